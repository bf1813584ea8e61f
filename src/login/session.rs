//! Server-side login sessions. The browser holds a 256-bit random id in the `valet_session`
//! cookie (`__Host-valet_session` on an https issuer); the store holds only its hash, so a
//! copy of the store cannot be used to sign in.

use std::time::Duration;

use crate::crypto::{SecretError, SecretHash, SecretHasher, random_token};
use crate::domain::UnixTime;
use crate::store::{Session, SharedStore, StoreError, User};

pub const SESSION_COOKIE: &str = "valet_session";

/// The session cookie's name. On an https issuer it carries the `__Host-` prefix, so the
/// browser accepts it only with `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2): a
/// sibling subdomain or a plain-http page cannot plant or overwrite it. On http (local
/// development) the prefix would make browsers drop the cookie, so the plain name is used.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-valet_session"
    } else {
        SESSION_COOKIE
    }
}

/// A session just made: the cookie value goes to the browser, the record to the store.
pub struct NewSession {
    pub cookie_value: String,
    pub session: Session,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] SecretError),
}

/// Start a session for a user who just signed in: a fresh id (never one the browser brought,
/// so no session fixation), its hash stored. The session the browser brought, if any, ends:
/// one browser holds one session, so signing in as someone else (or again) leaves nothing
/// behind that a later logout would miss.
pub async fn start(
    store: &SharedStore,
    hasher: &SecretHasher,
    user_id: &str,
    now: UnixTime,
    ttl: Duration,
    replacing: Option<&str>,
) -> Result<NewSession, SessionError> {
    let new = new_session(hasher, user_id, now, ttl)?;
    store.insert_session(&new.session).await?;
    if let Some(earlier) = replacing {
        end(store, hasher, earlier, now).await?;
    }
    Ok(new)
}

/// End the session `cookie_value` names, if it is live; true if one ended.
pub async fn end(
    store: &SharedStore,
    hasher: &SecretHasher,
    cookie_value: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    store.end_session(&hasher.hash(cookie_value), now).await
}

/// The `sid` of ID and logout tokens for the session whose stored hash is `hash`: derived
/// with the server key, so it names the session without revealing anything that opens it,
/// and every replica computes the same one.
pub fn sid(hasher: &SecretHasher, hash: &SecretHash) -> String {
    hasher.hash(&format!("sid:{}", hash.to_text())).to_text()
}

fn new_session(
    hasher: &SecretHasher,
    user_id: &str,
    now: UnixTime,
    ttl: Duration,
) -> Result<NewSession, SecretError> {
    let cookie_value = random_token()?;
    Ok(NewSession {
        session: Session {
            id_hash: hasher.hash(&cookie_value),
            user_id: user_id.to_owned(),
            auth_time: now,
            created_at: now,
            expires_at: now.plus(ttl),
        },
        cookie_value,
    })
}

/// The live session that `cookie_value` names and its user, if the user still exists and is
/// not disabled.
pub async fn current(
    store: &SharedStore,
    hasher: &SecretHasher,
    cookie_value: Option<&str>,
    now: UnixTime,
) -> Result<Option<(Session, User)>, StoreError> {
    let Some(value) = cookie_value else {
        return Ok(None);
    };
    let Some(session) = store.session(&hasher.hash(value), now).await? else {
        return Ok(None);
    };
    Ok(store
        .user_by_id(&session.user_id)
        .await?
        .filter(|user| !user.disabled)
        .map(|user| (session, user)))
}
