//! Where the server secret comes from: the configuration, a 0600 file beside the SQLite
//! database (created on first start), or, for an in-memory database, a random one for this
//! process only. PostgreSQL deployments must configure it: every replica needs the same one.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::{Settings, StoreKind};
use crate::crypto::{SecretError, ServerKeys, random_bytes};

/// What [`load`] found, for the caller to log.
pub enum SecretSource {
    Configured,
    File(PathBuf),
    CreatedFile(PathBuf),
    Ephemeral,
}

/// Use the configured secret; with SQLite and none configured, read or create one in a
/// 0600 file beside the database; with PostgreSQL, refuse.
pub fn load(settings: &Settings) -> Result<(ServerKeys, SecretSource), SecretError> {
    if let Some(secret) = &settings.secret {
        return Ok((
            ServerKeys::derive(secret.as_bytes())?,
            SecretSource::Configured,
        ));
    }
    match &settings.store {
        StoreKind::Postgres => Err(SecretError::MissingForPostgres),
        StoreKind::Sqlite { path: None } => Ok((
            ServerKeys::derive(&random_bytes::<32>()?)?,
            SecretSource::Ephemeral,
        )),
        StoreKind::Sqlite { path: Some(db) } => {
            let path = secret_file_beside(db);
            let (secret, created) = read_or_create_secret_file(&path)?;
            let source = if created {
                SecretSource::CreatedFile(path)
            } else {
                SecretSource::File(path)
            };
            Ok((ServerKeys::derive(secret.as_bytes())?, source))
        }
    }
}

/// `valet.db` -> `valet.db.secret`.
pub fn secret_file_beside(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".secret");
    db.with_file_name(name)
}

fn read_or_create_secret_file(path: &Path) -> Result<(String, bool), SecretError> {
    let file_err = |source| SecretError::File {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().to_owned();
            if secret.len() < 32 {
                return Err(SecretError::ShortFile(path.to_path_buf()));
            }
            Ok((secret, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(file_err)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    writeln!(file, "{secret}").map_err(file_err)?;
                    Ok((secret, true))
                }
                // Another process created it between our read and our create: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_create_secret_file(path)
                }
                Err(e) => Err(file_err(e)),
            }
        }
        Err(e) => Err(file_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_file_beside(&dir.path().join("valet.db"));
        assert!(path.ends_with("valet.db.secret"));
        let (first, created) = read_or_create_secret_file(&path).unwrap();
        assert!(created);
        let (second, created) = read_or_create_secret_file(&path).unwrap();
        assert!(!created);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
