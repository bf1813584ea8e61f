//! The audit trail: one function per event, each one structured `tracing` event on the
//! `audit` target with a stable `event` name, so operators can route and alert on them.
//! Ids, scopes and audiences only: never a secret, token, code or password.

use std::fmt::Display;

const TARGET: &str = "audit";

pub fn login_success(user_id: &str, client_id: &str) {
    tracing::info!(target: TARGET, event = "login.success", user_id, client_id, "signed in");
}

/// Wrong password or unknown user, at the login page (`via` absent) or the password grant.
pub fn login_failure(client_id: &str, via: Option<&'static str>) {
    tracing::info!(target: TARGET, event = "login.failure", client_id, via, "sign-in failed");
}

pub fn login_disabled_user(user_id: &str) {
    tracing::info!(
        target: TARGET,
        event = "login.failure",
        user_id,
        reason = "disabled",
        "sign-in refused: user disabled"
    );
}

pub fn login_refused(client_id: &str, retry_after: u64) {
    tracing::info!(
        target: TARGET,
        event = "login.refused",
        retry_after,
        client_id,
        "sign-in refused by the limiter"
    );
}

pub fn password_rehashed(user_id: &str) {
    tracing::info!(
        target: TARGET,
        event = "password.rehashed",
        user_id,
        "password hash upgraded to the current parameters"
    );
}

pub fn consent_granted(client_id: &str, user_id: &str, scope: &dyn Display) {
    tracing::info!(
        target: TARGET,
        event = "consent.granted",
        client_id,
        user_id,
        scope = %scope,
        "consent granted"
    );
}

pub fn consent_denied(client_id: &str, user_id: &str) {
    tracing::info!(target: TARGET, event = "consent.denied", client_id, user_id, "consent denied");
}

/// A finished `/authorize` request: `code.issued`, or `token.issued` for the implicit grant.
pub fn authorization_granted(
    event: &'static str,
    grant_type: &dyn Display,
    client_id: &str,
    user_id: &str,
    scope: &dyn Display,
) {
    tracing::info!(
        target: TARGET,
        event,
        grant_type = %grant_type,
        client_id,
        user_id,
        scope = %scope,
        "authorization granted"
    );
}

pub fn token_issued(
    grant_type: &dyn Display,
    client_id: &str,
    audience: &str,
    scope: &dyn Display,
) {
    tracing::info!(
        target: TARGET,
        event = "token.issued",
        grant_type = %grant_type,
        client_id,
        audience,
        scope = %scope,
        "token issued"
    );
}

pub fn code_replayed(client_id: &str, grant_id: &str) {
    tracing::warn!(
        target: TARGET,
        event = "code.replay_detected",
        client_id,
        grant_id,
        "authorization code replayed; grant revoked"
    );
}

pub fn refresh_reused(client_id: &str, family_id: &str) {
    tracing::warn!(
        target: TARGET,
        event = "refresh.reuse_detected",
        client_id,
        family_id,
        "refresh token reused; its grant is revoked"
    );
}

pub fn refresh_token_revoked(client_id: &str, grant_id: &str) {
    tracing::info!(
        target: TARGET,
        event = "token.revoked",
        token_type = "refresh_token",
        client_id,
        grant_id,
        "refresh token revoked with its grant"
    );
}

pub fn access_token_revoked(client_id: &str, jti: &str) {
    tracing::info!(
        target: TARGET,
        event = "token.revoked",
        token_type = "access_token",
        client_id,
        jti,
        "access token revoked"
    );
}

pub fn client_created(client_id: &str) {
    tracing::info!(target: TARGET, event = "client.created", client_id, "client created");
}

/// A client registered itself (RFC 7591) from `address`.
pub fn client_registered(client_id: &str, address: std::net::IpAddr) {
    tracing::info!(target: TARGET, event = "client.registered", client_id, address = %address, "client registered");
}

pub fn client_updated(client_id: &str) {
    tracing::info!(target: TARGET, event = "client.updated", client_id, "client updated");
}

pub fn client_deleted(client_id: &str) {
    tracing::info!(target: TARGET, event = "client.deleted", client_id, "client deleted");
}

pub fn key_rotated(kid: &str, alg: &str) {
    tracing::info!(target: TARGET, event = "key.rotated", kid, alg, "signing key rotated");
}
