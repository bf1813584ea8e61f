//! User passwords: Argon2id (RFC 9106) with the configured parameters, PHC string format.
//! Hashing is CPU- and memory-heavy, so it runs on the blocking pool, never on the runtime.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordHashSettings;
use crate::crypto::{random_bytes, random_token};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must not be empty")]
    Empty,
    #[error("invalid password-hash parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn argon2(params: &PasswordHashSettings) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| PasswordError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a new password with a fresh 128-bit salt from the OS CSPRNG.
pub fn hash_blocking(
    params: &PasswordHashSettings,
    password: &str,
) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let salt_bytes = random_bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2(params)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// What a password check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    /// The password matched. `rehashed` is a new hash with the current parameters when the
    /// stored one was made with others: a hash cheaper than the current parameters would also
    /// answer faster than an unknown user's (the dummy hash), telling the two apart.
    Right {
        rehashed: Option<String>,
    },
}

/// Checks passwords off the async runtime, at most `max_concurrent` at a time, and at the
/// same cost whether or not the user exists.
#[derive(Clone)]
pub struct PasswordVerifier {
    params: PasswordHashSettings,
    permits: Arc<Semaphore>,
    /// Verified against when the username is unknown, so that the answer takes as long.
    dummy_hash: Arc<str>,
}

impl PasswordVerifier {
    /// Hashes a random dummy password with the configured parameters (once, at startup).
    pub async fn new(params: &PasswordHashSettings) -> Result<Self, PasswordError> {
        let dummy_password = random_token().map_err(|e| PasswordError::Hash(e.to_string()))?;
        let dummy_hash = hash(params, dummy_password).await?;
        let permits = match params.max_concurrent {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Self {
            params: *params,
            permits: Arc::new(Semaphore::new(permits)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Whether `password` matches `stored` (a PHC string); `None` for an unknown user costs
    /// the same and is `Wrong`.
    pub async fn verify(
        &self,
        stored: Option<&str>,
        password: String,
    ) -> Result<Verdict, PasswordError> {
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let params = self.params;
        let verdict =
            tokio::task::spawn_blocking(move || verify_blocking(&params, &stored, &password))
                .await
                .map_err(|e| PasswordError::Hash(e.to_string()))??;
        Ok(if known { verdict } else { Verdict::Wrong })
    }
}

/// Verify with the parameters recorded in the hash itself, so that hashes made before a
/// change of `password_hash` keep working; on a match, rehash if those were not the current.
fn verify_blocking(
    params: &PasswordHashSettings,
    stored: &str,
    password: &str,
) -> Result<Verdict, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|e| PasswordError::Hash(e.to_string()))?;
    if argon2(params)?
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Ok(Verdict::Wrong);
    }
    let rehashed = if has_current_parameters(params, &parsed) {
        None
    } else {
        Some(hash_blocking(params, password)?)
    };
    Ok(Verdict::Right { rehashed })
}

fn has_current_parameters(params: &PasswordHashSettings, hash: &PasswordHash<'_>) -> bool {
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (params.memory_kib, params.iterations, params.parallelism)
        })
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(
    params: &PasswordHashSettings,
    password: String,
) -> Result<String, PasswordError> {
    let params = *params;
    tokio::task::spawn_blocking(move || hash_blocking(&params, &password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_configured_parameters() {
        let params = PasswordHashSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
        };
        let hash = hash_blocking(&params, "correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            argon2(&params)
                .unwrap()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            argon2(&params)
                .unwrap()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(matches!(
            hash_blocking(&params, ""),
            Err(PasswordError::Empty)
        ));
    }

    fn params(memory_kib: u32) -> PasswordHashSettings {
        PasswordHashSettings {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
        }
    }

    #[tokio::test]
    async fn verifier_accepts_only_the_right_password_of_a_known_user() {
        let verifier = PasswordVerifier::new(&params(1024)).await.unwrap();
        let stored = hash_blocking(&params(1024), "correct horse").unwrap();
        let check = |stored: Option<String>, password: &'static str| {
            let verifier = verifier.clone();
            async move { verifier.verify(stored.as_deref(), password.into()).await }
        };
        assert_eq!(
            check(Some(stored.clone()), "correct horse").await.unwrap(),
            Verdict::Right { rehashed: None }
        );
        assert_eq!(
            check(Some(stored), "Correct horse").await.unwrap(),
            Verdict::Wrong
        );
        assert_eq!(check(None, "correct horse").await.unwrap(), Verdict::Wrong);
        assert!(check(Some("not a phc string".into()), "x").await.is_err());
    }

    #[tokio::test]
    async fn a_hash_with_old_parameters_is_replaced_on_a_match_only() {
        let old = hash_blocking(&params(512), "correct horse").unwrap();
        let verifier = PasswordVerifier::new(&params(1024)).await.unwrap();
        assert_eq!(
            verifier.verify(Some(&old), "wrong".into()).await.unwrap(),
            Verdict::Wrong
        );
        let Verdict::Right {
            rehashed: Some(new),
        } = verifier
            .verify(Some(&old), "correct horse".into())
            .await
            .unwrap()
        else {
            panic!("a match with old parameters is rehashed");
        };
        assert!(new.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{new}");
        assert_eq!(
            verifier
                .verify(Some(&new), "correct horse".into())
                .await
                .unwrap(),
            Verdict::Right { rehashed: None }
        );
    }
}
