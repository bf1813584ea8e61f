//! The server secret and what is derived from it: the key that seals signing keys at rest
//! and the key that hashes client secrets and opaque tokens.

pub mod aead;
pub mod secret_hash;

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::config::{Settings, StoreKind};

pub use aead::KeySealer;
pub use secret_hash::{SecretHash, SecretHasher};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no `secret` is configured; PostgreSQL deployments share signing keys across replicas, so every replica needs the same secret: set VALET_SECRET (e.g. to the output of `openssl rand -base64 32`)"
    )]
    MissingForPostgres,
    #[error("secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} holds fewer than 32 characters")]
    ShortFile(PathBuf),
    #[error("the operating system's random source failed")]
    Random,
    #[error("could not derive keys from the secret")]
    Derive,
}

/// Keys derived from the configured `secret`. Cheap to clone: each part is reference counted.
#[derive(Clone)]
pub struct ServerKeys {
    pub sealer: KeySealer,
    pub hasher: SecretHasher,
    /// Keys the CSRF tokens of the login, consent and logout forms.
    pub csrf: SecretHasher,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(..)")
    }
}

/// What [`ServerKeys::load`] found, for the caller to log.
pub enum SecretSource {
    Configured,
    File(PathBuf),
    CreatedFile(PathBuf),
    Ephemeral,
}

impl ServerKeys {
    /// The secret is high-entropy (at least 32 characters, checked in config), so HKDF is the
    /// right KDF: a slow password KDF would only delay every start of every replica.
    pub fn derive(secret: &[u8]) -> Result<Self, SecretError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"valet/v1").extract(secret);
        Ok(Self {
            sealer: KeySealer::new(&expand32(&prk, b"valet/v1 signing-key sealing")?)
                .map_err(|_| SecretError::Derive)?,
            hasher: SecretHasher::new(&expand32(&prk, b"valet/v1 secret hashing")?),
            csrf: SecretHasher::new(&expand32(&prk, b"valet/v1 csrf tokens")?),
        })
    }

    /// Use the configured secret; with SQLite and none configured, read or create one in a
    /// 0600 file beside the database; with PostgreSQL, refuse.
    pub fn load(settings: &Settings) -> Result<(Self, SecretSource), SecretError> {
        if let Some(secret) = &settings.config.secret {
            return Ok((Self::derive(secret.as_bytes())?, SecretSource::Configured));
        }
        match &settings.store {
            StoreKind::Postgres => Err(SecretError::MissingForPostgres),
            StoreKind::Sqlite { path: None } => Ok((
                Self::derive(&random_bytes::<32>()?)?,
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
                Ok((Self::derive(secret.as_bytes())?, source))
            }
        }
    }
}

fn expand32(prk: &hkdf::Prk, info: &[u8]) -> Result<[u8; 32], SecretError> {
    let mut out = [0u8; 32];
    let info = [info];
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| SecretError::Derive)?;
    Ok(out)
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

/// `N` bytes straight from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| SecretError::Random)?;
    Ok(bytes)
}

/// 256 random bits as 43 base64url characters: client secrets, codes, refresh tokens,
/// session ids (RFC 6749 §10.10).
pub fn random_token() -> Result<String, SecretError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
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

    #[test]
    fn derived_keys_differ_by_secret() {
        let a = ServerKeys::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let b = ServerKeys::derive(b"0123456789abcdef0123456789abcdeX").unwrap();
        assert_ne!(a.hasher.hash("x"), b.hasher.hash("x"));
    }

    #[test]
    fn random_tokens_are_256_bits_and_distinct() {
        let a = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token().unwrap());
    }
}
