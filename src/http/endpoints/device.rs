//! The device authorization grant's two web halves (RFC 8628): `POST /device_authorization`
//! for the device (JSON), and the `/device` page where the person types the user code, then
//! signs in and consents on the usual pages. A wrong code costs the address an attempt on the
//! login limiter, so user codes cannot be guessed faster than passwords.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::consent::proceed;
use crate::http::browser::{self, CsrfCookie, page_url};
use crate::http::client_ip::client_ip;
use crate::http::extract;
use crate::http::page_error::PageError;
use crate::http::pages::{DeviceView, Page};
use crate::http::respond::uncached_json;
use crate::http::state::AppState;
use crate::login::csrf::FormPurpose;
use crate::oauth::device::{self, DeviceStart};
use crate::oauth::{OAuthError, client_auth};

pub async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match start(&state, &headers, body).await {
        Ok(started) => uncached_json(StatusCode::OK, started),
        Err(error) => error.into_response(),
    }
}

async fn start(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<DeviceStart, OAuthError> {
    let now = state.clock.now();
    let params = extract::oauth_form(headers, body, state.settings.http.body_limit).await?;
    let presented = client_auth::presented(extract::authorization(headers)?, &params)?;
    let client = client_auth::authenticate(state, &presented, now).await?;
    state.web.rate_limits.check_client(&client.client_id)?;
    device::start(state, &client, &params, now).await
}

#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// The code form, filled in when the device's `verification_uri_complete` was followed.
pub async fn device_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<DeviceQuery>,
) -> Response {
    let result = async {
        let csrf = CsrfCookie::ensure(&state, &headers)?;
        let code = query.user_code.unwrap_or_default();
        Ok(csrf.apply(
            &state,
            form(&state, &csrf.value, code, None, StatusCode::OK),
        ))
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

pub async fn device_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let posted = browser::posted_form(&state, &headers, body, FormPurpose::Device).await?;
        let typed = posted.fields.get("user_code").unwrap_or("").to_owned();
        let address = client_ip(peer, &headers, &state.settings.http.trusted_proxies);
        let again = |status, message: String| {
            form(&state, &posted.csrf_cookie, typed.clone(), Some(message), status)
        };
        if let Err(locked) = state
            .limiter
            .reserve_guess(address, now)
            .await
            .map_err(PageError::from_store)?
        {
            let page = again(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many wrong codes. Wait {} seconds and try again.", locked.retry_after),
            );
            return Ok(browser::retry_after(page, locked.retry_after));
        }
        let Some(pending) = device::pending_for_user_code(&state, &typed, now).await? else {
            return Ok(again(
                StatusCode::BAD_REQUEST,
                "That code is not valid, or has expired or been used. Check the code on your device, or start again there.".into(),
            ));
        };
        state
            .limiter
            .release_guess(address)
            .await
            .map_err(PageError::from_store)?;
        match browser::signed_in_for(&state, &headers, &pending.request, now).await? {
            Some((session, user)) => Ok(proceed(&state, &pending, &session, &user, now).await),
            None => Ok(browser::see_other(&page_url("/login", &pending.id))),
        }
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

fn form(
    state: &AppState,
    csrf_cookie: &str,
    user_code: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let view = DeviceView {
        csrf: state.web.csrf.token(FormPurpose::Device, "", csrf_cookie),
        user_code,
        error,
        done: None,
    };
    state.web.pages.render(status, Page::Device(view))
}
