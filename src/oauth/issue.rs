//! The vocabulary every grant issues tokens with: what a grant may read ([`TokenContext`]),
//! the RFC 6749 §5.1 response, and signing access and ID tokens with the in-memory key.

use serde::Serialize;

use crate::core::Core;
use crate::crypto::SecretHash;
use crate::domain::{ScopeSet, UnixTime};
use crate::login::session;
use crate::oauth::OAuthError;
use crate::store::{Client, SessionClient};
use crate::tokens::access::{self, Bearer, IssuedAccessToken};
use crate::tokens::id_token::{self, Authentication, Bound, IdTokenGrant, SessionId};

/// What every grant's `exchange` may read.
pub struct TokenContext<'a> {
    pub core: &'a Core,
    pub client: &'a Client,
    pub now: UnixTime,
    /// The end user's address, for the login limiter of the password grant: only where a
    /// trusted proxy supplied it, never the app server's own address (SPEC §7).
    pub end_user_address: Option<std::net::IpAddr>,
}

/// RFC 6749 §5.1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OpenID Connect: from the code flow when the scope has `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// For metrics and logs; not part of the response.
    #[serde(skip)]
    pub audience: String,
}

impl TokenResponse {
    pub fn new(issued: IssuedAccessToken, scope: &ScopeSet, refresh_token: Option<String>) -> Self {
        Self {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: scope.to_string(),
            refresh_token,
            id_token: None,
            audience: issued.audience,
        }
    }

    /// The ID token of a token response (Core §3.1.3.3, §12.2), bound to its access token.
    pub async fn add_id_token(
        &mut self,
        cx: &TokenContext<'_>,
        signed_in: Authentication<'_>,
    ) -> Result<(), OAuthError> {
        let bound = Bound {
            access_token: Some(self.access_token.as_str()),
            code: None,
        };
        self.id_token = Some(sign_id_token(cx.core, cx.client, bound, signed_in, cx.now).await?);
        Ok(())
    }
}

/// The session an ID token names, from its stored hash.
pub fn session_id<'a>(core: &Core, hash: Option<&'a SecretHash>) -> Option<SessionId<'a>> {
    hash.map(|hash| SessionId {
        hash,
        sid: session::sid(&core.server_keys.hasher, hash),
    })
}

/// Sign an access token with the current in-memory key: the last step of every grant.
pub fn sign_access_token(
    core: &Core,
    bearer: &Bearer<'_>,
    now: UnixTime,
) -> Result<IssuedAccessToken, OAuthError> {
    let keys = core.keys.current();
    access::issue(
        keys.current(),
        core.settings.issuer_str(),
        core.settings.tokens.access_token_ttl,
        bearer,
        now,
    )
    .map_err(|e| OAuthError::server_error(e.to_string()))
}

/// Sign an ID token for `client_id` with the current key and `tokens.id_token_ttl`.
pub async fn sign_id_token(
    core: &Core,
    client: &Client,
    bound: Bound<'_>,
    signed_in: Authentication<'_>,
    now: UnixTime,
) -> Result<String, OAuthError> {
    if let (Some(session), Some(_)) = (&signed_in.session, &client.logout.backchannel_logout_uri) {
        // Back-Channel Logout: this client is to hear when the session ends.
        let entry = SessionClient {
            session_hash: session.hash.clone(),
            client_id: client.client_id.clone(),
            sid: session.sid.clone(),
            user_id: signed_in.user.id.clone(),
            expires_at: signed_in
                .auth_time
                .plus(core.settings.login.session_ttl)
                .max(now),
        };
        core.store.insert_session_client(&entry).await?;
        // Checked after the record is written: a logout racing this either finds the record
        // (and queues the client's logout token) or has ended the session, seen here. An ID
        // token naming an ended session would otherwise never be followed by its logout.
        if core.store.session(session.hash, now).await?.is_none() {
            return Err(OAuthError::invalid_grant(
                "the sign-in session of this grant has ended",
            ));
        }
    }
    let keys = core.keys.current();
    let grant = IdTokenGrant {
        issuer: core.settings.issuer_str(),
        client_id: &client.client_id,
        ttl: core.settings.tokens.id_token_ttl,
        bound,
    };
    id_token::issue(keys.current(), &grant, signed_in, now)
        .map_err(|e| OAuthError::server_error(e.to_string()))
}
