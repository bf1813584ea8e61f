//! `POST /revoke` (RFC 7009): client authentication, then revocation; 200 with an empty body
//! whether or not there was anything to revoke, 400 `invalid_grant` for another client's token.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::cors::ClientOrigins;
use crate::http::extract;
use crate::http::state::AppState;
use crate::oauth::{OAuthError, client_auth, revoke};

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let mut origins = None;
    let mut response = match handle(&state, &headers, body, &mut origins).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    };
    if let Some(origins) = origins {
        response.extensions_mut().insert(origins);
    }
    response
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    origins: &mut Option<ClientOrigins>,
) -> Result<(), OAuthError> {
    let now = state.clock.now();
    let params = extract::oauth_form(headers, body, state.settings.http.body_limit).await?;
    let presented = client_auth::presented(extract::authorization(headers)?, &params)?;
    let client = client_auth::authenticate(state, &presented, now).await?;
    *origins = Some(ClientOrigins(client.allowed_origins.clone().into()));
    revoke::revoke(state, &client, &params, now).await
}
