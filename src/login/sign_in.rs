//! Checking a username and password, for the login page and the password grant alike: the
//! limiter first, Argon2 at the same cost for unknown users, a failure counted, and a hash
//! made with outdated parameters replaced on a successful check.

use crate::domain::UnixTime;
use crate::login::limiter::{Attempt, Locked};
use crate::login::password::{PasswordError, Verdict};
use crate::oauth::OAuthError;
use crate::oauth::authorize::PageError;
use crate::state::AppState;
use crate::store::{StoreError, User};

pub enum Outcome {
    /// The username or the address is locked; the password was not checked.
    Locked(Locked),
    /// Unknown user or wrong password (the caller must not say which); counted.
    Rejected,
    /// The password is right. The user may still be disabled: the caller decides.
    Accepted(User),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl From<SignInError> for OAuthError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(e) => e.into(),
            SignInError::Password(e) => OAuthError::server_error(e.to_string()),
        }
    }
}

impl From<SignInError> for PageError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(e) => PageError::from_store(e),
            SignInError::Password(e) => PageError::internal(e),
        }
    }
}

pub async fn check_password(
    state: &AppState,
    attempt: &Attempt<'_>,
    password: String,
    now: UnixTime,
) -> Result<Outcome, SignInError> {
    if let Err(locked) = state.limiter.check(attempt, now).await? {
        return Ok(Outcome::Locked(locked));
    }
    let user = state.store.user_by_username(attempt.username).await?;
    let stored = user.as_ref().map(|u| u.password_hash.as_str());
    let verdict = state.passwords.verify(stored, password).await?;
    match (user, verdict) {
        (Some(mut user), Verdict::Right { rehashed }) => {
            if let Some(upgraded) = rehashed {
                let store = &state.store;
                if store
                    .upgrade_password_hash(&user.id, &user.password_hash, &upgraded)
                    .await?
                {
                    tracing::info!(target: "audit", event = "password.rehashed", user_id = %user.id, "password hash upgraded to the current parameters");
                    user.password_hash = upgraded;
                }
            }
            Ok(Outcome::Accepted(user))
        }
        _ => {
            state.limiter.record_failure(attempt, now).await?;
            Ok(Outcome::Rejected)
        }
    }
}
