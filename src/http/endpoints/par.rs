//! `POST /par` (RFC 9126): client authentication, then the request checked as `/authorize`
//! would check it; `201` with the `request_uri` to send the browser with, or the error as
//! JSON (§2.3).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::extract;
use crate::http::respond::uncached_json;
use crate::http::state::AppState;
use crate::oauth::authorize::pushed::{self, Pushed};
use crate::oauth::{OAuthError, client_auth};

pub async fn push(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(&state, &headers, body).await {
        Ok(pushed) => uncached_json(StatusCode::CREATED, pushed),
        Err(error) => error.into_response(),
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Pushed, OAuthError> {
    let now = state.clock.now();
    let params = extract::oauth_form(headers, body, state.settings.http.body_limit).await?;
    let presented = client_auth::presented(extract::authorization(headers)?, &params)?;
    let client = client_auth::authenticate(state, &presented, now).await?;
    state.web.rate_limits.check_client(&client.client_id)?;
    // The credentials are not part of the authorization request.
    let params = params.without(&["client_secret", "client_assertion", "client_assertion_type"]);
    pushed::push(state, &client, params, now).await
}
