//! The resource owner password credentials grant (RFC 6749 §4.3), for confidential clients
//! allowed `password` only. The password is checked with Argon2id off the runtime at a bounded
//! concurrency; an unknown username costs the same as a wrong password; the login limiter
//! applies as on the login page. No consent step: the client is trusted with the password.

use super::refresh_token;
use crate::audit;
use crate::domain::ScopeSet;
use crate::login::limiter::Attempt;
use crate::login::sign_in::{self, Outcome};
use crate::oauth::issue::{TokenContext, TokenResponse};
use crate::oauth::scope::{self, Subject, Target, TargetRequest};
use crate::oauth::{OAuthError, Params};

pub struct Request {
    username: String,
    password: String,
    scope: Option<ScopeSet>,
    target: TargetRequest,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    Ok(Request {
        username: params.require("username")?.to_owned(),
        password: params.require("password")?.to_owned(),
        scope: scope::requested(params)?,
        target: TargetRequest::from_params(params)?,
    })
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: Request,
) -> Result<TokenResponse, OAuthError> {
    let core = cx.core;
    // Policy first: a request that could never succeed does not cost an Argon2 run.
    let Target {
        api,
        scope: granted,
    } = scope::resolve_target(
        core,
        cx.client,
        &request.target,
        request.scope.as_ref(),
        Subject::User,
    )
    .await?;

    let attempt = Attempt {
        username: &request.username,
        // The app server's address is every user's: count the username, and the end user's
        // address only where a trusted proxy supplied it (SPEC §7).
        address: cx.end_user_address,
    };
    let outcome =
        sign_in::check_password(&core.sign_in(), &attempt, request.password, cx.now).await?;
    let user = match outcome {
        Outcome::Accepted(user) => *user,
        Outcome::Locked(locked) => {
            return Err(OAuthError::invalid_grant(format!(
                "too many failed sign-in attempts; retry in {} seconds",
                locked.retry_after
            )));
        }
        Outcome::Rejected => {
            audit::login_failure(&cx.client.client_id, Some("password grant"));
            return Err(OAuthError::invalid_grant(
                "the username or password is incorrect",
            ));
        }
    };
    if user.disabled {
        return Err(OAuthError::invalid_grant("this user is disabled"));
    }
    core.limiter.record_success(&attempt).await?;

    refresh_token::sessionless_grant(cx, &user.id, &api.identifier, &granted, cx.now).await
}
