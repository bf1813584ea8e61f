//! `POST /par` (RFC 9126): client authentication, then the request checked as `/authorize`
//! would check it; `201` with the `request_uri` to send the browser with, or the error as
//! JSON (§2.3).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::extract;
use crate::http::state::AppState;
use crate::oauth::authorize::pushed::{self, Pushed};
use crate::oauth::{OAuthError, client_auth};

pub async fn push(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(&state, &headers, body).await {
        Ok(pushed) => {
            let mut response = (StatusCode::CREATED, Json(pushed)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Pushed, OAuthError> {
    let now = state.clock.now();
    let params = extract::oauth_form(headers, body, state.settings.http.body_limit).await?;
    let presented = client_auth::presented(extract::authorization(headers)?, &params)?;
    let client = client_auth::authenticate(state, &presented, now).await?;
    // The credentials are not part of the authorization request.
    let params = params.without(&["client_secret", "client_assertion", "client_assertion_type"]);
    pushed::push(state, &client, params, now).await
}
