//! `GET|POST /logout`: GET asks for confirmation (a link alone must not sign anyone out), POST
//! ends the session and clears its cookie.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::http::browser::{self, CsrfCookie};
use crate::http::page_error::PageError;
use crate::http::pages::{LogoutView, Page};
use crate::http::state::AppState;
use crate::login::csrf::FormPurpose;
use crate::login::session::{self, session_cookie_name};

pub async fn logout_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let now = state.clock.now();
    let result = async {
        let signed_in = browser::signed_in(&state, &headers, now).await?;
        let csrf = CsrfCookie::ensure(&state, &headers)?;
        let view = LogoutView {
            csrf: state.web.csrf.token(FormPurpose::Logout, "", &csrf.value),
            username: signed_in.map(|(_, user)| user.username),
        };
        Ok(csrf.apply(
            &state,
            state.web.pages.render(StatusCode::OK, Page::Logout(view)),
        ))
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

pub async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = state.clock.now();
    let result = async {
        browser::posted_form(&state, &headers, body, FormPurpose::Logout).await?;
        if let Some(value) = browser::cookie(&headers, session_cookie_name(state.settings.https()))
        {
            let ended = session::end(&state.store, &state.server_keys.hasher, &value, now)
                .await
                .map_err(PageError::from_store)?;
            if ended {
                tracing::info!("signed out");
            }
        }
        let mut response = state.web.pages.render(StatusCode::OK, Page::SignedOut);
        response
            .headers_mut()
            .append(header::SET_COOKIE, browser::clear_session_cookie(&state));
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}
