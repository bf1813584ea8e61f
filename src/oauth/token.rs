//! The token endpoint's protocol half (RFC 6749 §3.2, §5.1): a typed request per grant, one
//! exhaustive dispatch, and the success response.

use serde::Serialize;

use super::grants::{authorization_code, client_credentials, password, refresh_token};
use super::{OAuthError, Params};
use crate::core::Core;
use crate::domain::{GrantType, ScopeSet, UnixTime, printable};
use crate::store::Client;
use crate::tokens::access::{self, Bearer, IssuedAccessToken};

/// A token request whose grant type is known, allowed for the client and implemented.
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode(authorization_code::Exchange),
    Password(password::Request),
    ClientCredentials(client_credentials::Request),
    RefreshToken(refresh_token::Request),
}

impl TokenRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode(_) => GrantType::AuthorizationCode,
            TokenRequest::Password(_) => GrantType::Password,
            TokenRequest::ClientCredentials(_) => GrantType::ClientCredentials,
            TokenRequest::RefreshToken(_) => GrantType::RefreshToken,
        }
    }
}

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

/// The grant types `/token` accepts today, for the metadata documents.
pub const TOKEN_GRANTS: [GrantType; 4] = [
    GrantType::AuthorizationCode,
    GrantType::Password,
    GrantType::ClientCredentials,
    GrantType::RefreshToken,
];

/// Read `grant_type` and check the client may use it; then let the grant parse the rest.
pub fn parse(params: &Params, client: &Client) -> Result<TokenRequest, OAuthError> {
    let name = params.require("grant_type")?;
    let grant: GrantType = name.parse().map_err(|_| {
        OAuthError::unsupported_grant_type(format!(
            "grant type `{}` is not supported",
            printable(name)
        ))
    })?;
    if !TOKEN_GRANTS.contains(&grant) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant type `{grant}` is not supported at the token endpoint"
        )));
    }
    if grant.needs_confidential_client() && client.is_public() {
        return Err(OAuthError::unauthorized_client(format!(
            "a public client may not use the {grant} grant"
        )));
    }
    if !client.allows_grant(grant) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not allowed the {grant} grant"
        )));
    }
    match grant {
        GrantType::ClientCredentials => Ok(TokenRequest::ClientCredentials(
            client_credentials::parse(params)?,
        )),
        GrantType::AuthorizationCode => Ok(TokenRequest::AuthorizationCode(
            authorization_code::parse(params)?,
        )),
        GrantType::Password => Ok(TokenRequest::Password(password::parse(params)?)),
        GrantType::RefreshToken => Ok(TokenRequest::RefreshToken(refresh_token::parse(params)?)),
        // Implicit tokens come only from /authorize (RFC 6749 §4.2); TOKEN_GRANTS excludes it.
        GrantType::Implicit => Err(OAuthError::unsupported_grant_type(
            "the implicit grant has no token request; use /authorize with response_type=token",
        )),
    }
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    match request {
        TokenRequest::AuthorizationCode(req) => authorization_code::exchange(cx, req).await,
        TokenRequest::Password(req) => password::exchange(cx, req).await,
        TokenRequest::ClientCredentials(req) => client_credentials::exchange(cx, req).await,
        TokenRequest::RefreshToken(req) => refresh_token::exchange(cx, req).await,
    }
}
