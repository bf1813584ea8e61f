//! The device code grant (RFC 8628 §3.4, §3.5): the device polls until the person approves at
//! `/device`, then gets tokens once, as the code grant gives them.

use crate::oauth::device::device_code_hash;
use crate::oauth::grants::refresh_token;
use crate::oauth::issue::{TokenContext, TokenResponse};
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::store::DevicePoll;
use crate::tokens::id_token::Authentication;

#[derive(Debug)]
pub struct Request {
    device_code: String,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    Ok(Request {
        device_code: params.require("device_code")?.to_owned(),
    })
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: Request,
) -> Result<TokenResponse, OAuthError> {
    let core = cx.core;
    let hash = device_code_hash(core, &request.device_code);
    let device = match core
        .store
        .poll_device(&hash, &cx.client.client_id, cx.now)
        .await?
    {
        DevicePoll::Approved(device) => device,
        DevicePoll::Pending => {
            return Err(OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the user has not answered yet",
            ));
        }
        DevicePoll::SlowDown => {
            return Err(OAuthError::new(
                ErrorCode::SlowDown,
                "polling too fast: wait 5 seconds more between polls",
            ));
        }
        DevicePoll::Denied => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "the user denied the request",
            ));
        }
        DevicePoll::Expired => {
            return Err(OAuthError::new(
                ErrorCode::ExpiredToken,
                "the device code has expired; start again",
            ));
        }
        DevicePoll::Spent | DevicePoll::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the device code is not valid for this client, or was already used",
            ));
        }
    };
    let (Some(user_id), Some(auth_time)) = (device.user_id.as_deref(), device.auth_time) else {
        return Err(OAuthError::server_error(
            "an approved device sign-in without a user",
        ));
    };
    let user = core
        .store
        .user_by_id(user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_grant("the user is no longer active"))?;
    let mut response =
        refresh_token::sessionless_grant(cx, &user.id, &device.audience, &device.scope, auth_time)
            .await?;
    if device.scope.contains("openid") {
        let signed_in = Authentication {
            user,
            scope: &device.scope,
            auth_time,
            nonce: None,
            session: None,
            claims: &[],
        };
        response.add_id_token(cx, signed_in).await?;
    }
    Ok(response)
}
