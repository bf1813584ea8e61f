//! `GET` and `POST /userinfo` (OpenID Connect Core §5.3). The access token comes in the
//! `Authorization: Bearer` header or, for POST, in an `access_token` form field (RFC 6750
//! §2.1, §2.2); never in the query, and never in two places at once.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::cors::ClientOrigins;
use crate::http::extract;
use crate::http::respond::uncached_json;
use crate::http::state::AppState;
use crate::oauth::{Challenge, ErrorCode, OAuthError};
use crate::oidc::userinfo::{self, Answer, bearer_error};

pub async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, &method, &headers, body).await {
        Ok(Answer { claims, client }) => {
            let mut response = uncached_json(StatusCode::OK, claims);
            let origins = ClientOrigins(client.allowed_origins.clone().into());
            response.extensions_mut().insert(origins);
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, OAuthError> {
    let token = presented_token(state, method, headers, body).await?;
    userinfo::userinfo(state, &token, state.clock.now()).await
}

async fn presented_token(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<String, OAuthError> {
    let in_header = extract::bearer(extract::authorization(headers)?);
    let in_body = if method == Method::POST && extract::is_form_urlencoded(headers) {
        let limit = state.settings.http.body_limit;
        let params = extract::oauth_form(headers, body, limit).await?;
        params.get("access_token").map(str::to_owned)
    } else {
        None
    };
    match (in_header, in_body) {
        (Some(_), Some(_)) => Err(bearer_error(
            ErrorCode::InvalidRequest,
            "send the access token either in the Authorization header or in the body, not both",
        )),
        (Some(token), None) => Ok(token.to_owned()),
        (None, Some(token)) => Ok(token),
        // RFC 6750 §3.1: no credentials at all gets a challenge without an error code.
        (None, None) => Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "send an access token: Authorization: Bearer <token>",
        )
        .with_challenge(Some(Challenge::BearerWithoutError))),
    }
}
