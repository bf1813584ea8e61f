//! Checking a username and password, for the login page and the password grant alike: the
//! attempt reserved with the limiter first (counted as a failure until the caller records a
//! success), Argon2 at the same cost for unknown users, and a hash made with outdated
//! parameters replaced on a successful check.

use crate::audit;
use crate::domain::UnixTime;
use crate::login::limiter::{Attempt, Locked, LoginLimiter};
use crate::login::password::{PasswordError, PasswordVerifier, Verdict};
use crate::store::{SharedStore, StoreError, User};

pub enum Outcome {
    /// The username or the address is locked; the password was not checked.
    Locked(Locked),
    /// Unknown user or wrong password (the caller must not say which); counted.
    Rejected,
    /// The password is right. The user may still be disabled: the caller decides, and calls
    /// `LoginLimiter::record_success` when it lets the user in (until then the attempt stays
    /// counted as a failure). Boxed: a user with all their claims dwarfs the other outcomes.
    Accepted(Box<User>),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// What checking a password needs: where users live, the limiter, and the hasher.
pub struct SignIn<'a> {
    pub store: &'a SharedStore,
    pub limiter: &'a LoginLimiter,
    pub passwords: &'a PasswordVerifier,
}

pub async fn check_password(
    sign_in: &SignIn<'_>,
    attempt: &Attempt<'_>,
    password: String,
    now: UnixTime,
) -> Result<Outcome, SignInError> {
    // The attempt is counted before Argon2 runs, so parallel guesses see each other.
    if let Err(locked) = sign_in.limiter.reserve(attempt, now).await? {
        return Ok(Outcome::Locked(locked));
    }
    let user = sign_in.store.user_by_username(attempt.username).await?;
    let stored = user.as_ref().map(|u| u.password_hash.as_str());
    let verdict = sign_in.passwords.verify(stored, password).await?;
    match (user, verdict) {
        (Some(mut user), Verdict::Right { rehashed }) => {
            if user.disabled {
                // Not a failure, and not a sign-in that clears the username's count either.
                sign_in.limiter.release(attempt).await?;
            }
            if let Some(upgraded) = rehashed {
                let store = &sign_in.store;
                if store
                    .upgrade_password_hash(&user.id, &user.password_hash, &upgraded)
                    .await?
                {
                    audit::password_rehashed(&user.id);
                    user.password_hash = upgraded;
                }
            }
            Ok(Outcome::Accepted(Box::new(user)))
        }
        _ => {
            sign_in.limiter.record_failure();
            Ok(Outcome::Rejected)
        }
    }
}
