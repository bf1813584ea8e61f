//! The token endpoint's protocol half (RFC 6749 §3.2, §5.1): a typed request per grant, one
//! exhaustive dispatch, and the success response.

use super::grants::{authorization_code, client_credentials, device_code, password, refresh_token};
use super::issue::{TokenContext, TokenResponse};
use super::{OAuthError, Params};
use crate::domain::{GrantType, printable};
use crate::store::Client;

/// A token request whose grant type is known, allowed for the client and implemented.
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode(authorization_code::Exchange),
    Password(password::Request),
    ClientCredentials(client_credentials::Request),
    RefreshToken(refresh_token::Request),
    DeviceCode(device_code::Request),
}

impl TokenRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode(_) => GrantType::AuthorizationCode,
            TokenRequest::Password(_) => GrantType::Password,
            TokenRequest::ClientCredentials(_) => GrantType::ClientCredentials,
            TokenRequest::RefreshToken(_) => GrantType::RefreshToken,
            TokenRequest::DeviceCode(_) => GrantType::DeviceCode,
        }
    }
}

/// The grant types `/token` accepts today, for the metadata documents.
pub const TOKEN_GRANTS: [GrantType; 5] = [
    GrantType::AuthorizationCode,
    GrantType::Password,
    GrantType::ClientCredentials,
    GrantType::RefreshToken,
    GrantType::DeviceCode,
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
        GrantType::DeviceCode => Ok(TokenRequest::DeviceCode(device_code::parse(params)?)),
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
        TokenRequest::DeviceCode(req) => device_code::exchange(cx, req).await,
    }
}
