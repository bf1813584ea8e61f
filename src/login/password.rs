//! User passwords: Argon2id (RFC 9106) with the configured parameters, PHC string format.
//! Hashing is CPU- and memory-heavy, so it runs on the blocking pool, never on the runtime.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordHashConfig;
use crate::crypto::random_bytes;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must not be empty")]
    Empty,
    #[error("invalid password-hash parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn argon2(config: &PasswordHashConfig) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| PasswordError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a new password with a fresh 128-bit salt from the OS CSPRNG.
pub fn hash_blocking(config: &PasswordHashConfig, password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let salt_bytes = random_bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2(config)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(config: &PasswordHashConfig, password: String) -> Result<String, PasswordError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || hash_blocking(&config, &password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn hashes_are_argon2id_with_the_configured_parameters() {
        let config = PasswordHashConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
        };
        let hash = hash_blocking(&config, "correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            argon2(&config)
                .unwrap()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            argon2(&config)
                .unwrap()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(matches!(
            hash_blocking(&config, ""),
            Err(PasswordError::Empty)
        ));
    }
}
