//! The token endpoint's protocol half (RFC 6749 §3.2, §5.1): a typed request per grant, one
//! exhaustive dispatch, and the success response.

use serde::Serialize;

use super::grants::{authorization_code, client_credentials};
use super::{OAuthError, Params};
use crate::domain::{GrantType, UnixTime, printable};
use crate::state::AppState;
use crate::store::Client;

/// A token request whose grant type is known, allowed for the client and implemented.
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode(authorization_code::Exchange),
    ClientCredentials(client_credentials::Request),
}

/// What every grant's `exchange` may read.
pub struct TokenContext<'a> {
    pub state: &'a AppState,
    pub client: &'a Client,
    pub now: UnixTime,
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
}

/// The grant types `/token` accepts today, for the metadata documents.
pub const TOKEN_GRANTS: [GrantType; 2] =
    [GrantType::AuthorizationCode, GrantType::ClientCredentials];

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
        GrantType::Implicit | GrantType::Password | GrantType::RefreshToken => Err(
            OAuthError::unsupported_grant_type(format!("grant type `{grant}` is not supported")),
        ),
    }
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    match request {
        TokenRequest::AuthorizationCode(req) => authorization_code::exchange(cx, req).await,
        TokenRequest::ClientCredentials(req) => client_credentials::exchange(cx, req).await,
    }
}
