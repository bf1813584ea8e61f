//! `POST /token` (RFC 6749 §3.2): form, client authentication, grant dispatch, response.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::audit;
use crate::http::client_ip::forwarded_end_user;
use crate::http::cors::ClientOrigins;
use crate::http::extract;
use crate::http::state::AppState;
use crate::oauth::issue::{TokenContext, TokenResponse};
use crate::oauth::token;
use crate::oauth::{OAuthError, client_auth};

pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut origins = None;
    let mut response = match handle(&state, peer, &headers, body, &mut origins).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    if let Some(origins) = origins {
        response.extensions_mut().insert(origins);
    }
    response
}

async fn handle(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    origins: &mut Option<ClientOrigins>,
) -> Result<TokenResponse, OAuthError> {
    let now = state.clock.now();
    let params = extract::oauth_form(headers, body, state.settings.http.body_limit).await?;
    let presented = client_auth::presented(extract::authorization(headers)?, &params)?;
    let client = client_auth::authenticate(state, &presented, now).await?;
    state.web.rate_limits.check_client(&client.client_id)?;
    *origins = Some(ClientOrigins(client.allowed_origins.clone().into()));
    let request = token::parse(&params, &client)?;
    let grant = request.grant_type();
    let cx = TokenContext {
        core: state,
        client: &client,
        now,
        end_user_address: forwarded_end_user(peer, headers, &state.settings.http.trusted_proxies),
    };
    let response = token::exchange(&cx, request).await?;
    state
        .metrics
        .token_issued(grant.as_str(), &response.audience);
    audit::token_issued(
        &grant,
        &client.client_id,
        &response.audience,
        &response.scope,
    );
    Ok(response)
}
