//! The client credentials grant (RFC 6749 §4.4): a confidential client gets a token for
//! itself. No store round trip: the client and API come from the cache, the key from memory.

use crate::domain::ScopeSet;
use crate::oauth::issue::{TokenContext, TokenResponse, sign_access_token};
use crate::oauth::scope::{self, Subject, Target, TargetRequest};
use crate::oauth::{OAuthError, Params};
use crate::tokens::access::Bearer;

#[derive(Debug)]
pub struct Request {
    pub scope: Option<ScopeSet>,
    pub target: TargetRequest,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    Ok(Request {
        scope: scope::requested(params)?,
        target: TargetRequest::from_params(params)?,
    })
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: Request,
) -> Result<TokenResponse, OAuthError> {
    let Target {
        api,
        scope: granted,
    } = scope::resolve_target(
        cx.core,
        cx.client,
        &request.target,
        request.scope.as_ref(),
        Subject::Client,
    )
    .await?;
    let issued = sign_access_token(
        cx.core,
        &Bearer {
            subject: &cx.client.client_id,
            client_id: &cx.client.client_id,
            audience: &api.identifier,
            scope: &granted,
            grant_id: None,
        },
        cx.now,
    )?;
    Ok(TokenResponse::new(issued, &granted, None))
}
