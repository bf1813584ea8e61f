//! The registration endpoint (RFC 7591 §3) and each registered client's configuration
//! endpoint (RFC 7592 §2): JSON in, JSON out, bearer tokens in the `Authorization` header.
//! Routed only when `registration.mode` is not `closed`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::client_ip::client_ip;
use crate::http::extract;
use crate::http::respond::uncached_json;
use crate::http::state::AppState;
use crate::oauth::registration::{self, RegisteredClient};
use crate::oauth::{Challenge, ErrorCode, OAuthError};

/// `POST /register`: 201 with the client's metadata, its secret (if confidential), and its
/// registration access token and configuration URI.
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let initial_token = extract::bearer(extract::authorization(&headers)?);
        let address = client_ip(peer, &headers, &state.settings.http.trusted_proxies);
        let metadata = extract::json_body(&headers, body, state.settings.http.body_limit).await?;
        registration::register(&state, &metadata, initial_token, address).await
    }
    .await;
    answer(&state, StatusCode::CREATED, result)
}

/// `GET /register/{client_id}`.
pub async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let token = access_token(&headers)?;
        registration::read(&state, &client_id, token).await
    }
    .await;
    answer(&state, StatusCode::OK, result)
}

/// `PUT /register/{client_id}`: the whole registration replaced; a new access token.
pub async fn update(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let token = access_token(&headers)?;
        let metadata = extract::json_body(&headers, body, state.settings.http.body_limit).await?;
        registration::update(&state, &client_id, token, &metadata).await
    }
    .await;
    answer(&state, StatusCode::OK, result)
}

/// `DELETE /register/{client_id}`: 204, and the client is gone with all it was issued.
pub async fn delete(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let token = access_token(&headers)?;
        registration::delete(&state, &client_id, token).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

fn access_token(headers: &HeaderMap) -> Result<&str, OAuthError> {
    extract::bearer(extract::authorization(headers)?).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidToken,
            "send the registration access token: Authorization: Bearer <token>",
        )
        .with_challenge(Some(Challenge::BearerWithoutError))
    })
}

fn answer(
    state: &AppState,
    status: StatusCode,
    result: Result<RegisteredClient, OAuthError>,
) -> Response {
    match result {
        Ok(registered) => uncached_json(status, registered.to_json(state)),
        Err(error) => error.into_response(),
    }
}
