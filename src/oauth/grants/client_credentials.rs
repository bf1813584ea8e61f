//! The client credentials grant (RFC 6749 §4.4): a confidential client gets a token for
//! itself. No store round trip: the client and API come from the cache, the key from memory.

use super::super::scope::{self, ScopeRequest, Subject, TargetRequest};
use super::super::token::{Bearer, TokenContext, TokenResponse, sign_access_token};
use super::super::{OAuthError, Params};
use crate::domain::ScopeSet;

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
    let settings = &cx.core.settings;
    let audience = request
        .target
        .resolve(settings.default_audience.as_deref())?;
    let api = cx.core.directory.api(&audience).await?;
    let api = scope::check_target(cx.client, &audience, api.as_deref())?;
    let granted = scope::decide(&ScopeRequest {
        requested: request.scope.as_ref(),
        client: cx.client,
        api,
        subject: Subject::Client,
    })?;
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
