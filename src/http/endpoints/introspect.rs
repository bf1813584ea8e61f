//! `POST /introspect` (RFC 7662): for authenticated confidential clients (resource servers
//! and the clients themselves), never for anonymous callers; each sees only the tokens
//! [`introspect::introspect`] lets it see (§4).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::extract;
use crate::http::respond::uncached_json;
use crate::http::state::AppState;
use crate::oauth::introspect::{self, Introspection};
use crate::oauth::{OAuthError, client_auth};

pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(&state, &headers, body).await {
        Ok(answer) => uncached_json(StatusCode::OK, answer),
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Introspection, OAuthError> {
    let now = state.clock.now();
    // A NUL in the token makes it a token that is not active, not a malformed request
    // (RFC 7662 §2.2); introspection never stores what it is given.
    let params =
        extract::oauth_form_allowing_nul(headers, body, state.settings.http.body_limit, &["token"])
            .await?;
    let presented = client_auth::presented(extract::authorization(headers)?, &params)?;
    let client = client_auth::authenticate(state, &presented, now).await?;
    if client.is_public() {
        // RFC 7662 §2.1: the caller must be authorized; a public client proves nothing. The
        // answer is that of an unknown client id, so public ids cannot be told apart (SPEC §7).
        return Err(client_auth::failure(
            &presented,
            "public clients cannot introspect",
        ));
    }
    introspect::introspect(state, &client, &params, now).await
}
