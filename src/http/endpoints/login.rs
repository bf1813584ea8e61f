//! `GET|POST /login`: the sign-in form of a pending authorization request. A failure says so
//! without telling whether the user exists, keeps the username, and counts against the
//! limiter; a success starts a fresh server-side session.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::consent::{PageQuery, proceed};
use crate::audit;
use crate::http::browser::{self, CsrfCookie};
use crate::http::client_ip::client_ip;
use crate::http::page_error::PageError;
use crate::http::pages::{LoginView, Page};
use crate::http::state::AppState;
use crate::login::csrf::FormPurpose;
use crate::login::limiter::Attempt;
use crate::login::session::{self, session_cookie_name};
use crate::login::sign_in::{self, Outcome};
use crate::oauth::authorize::{self, Pending};

pub async fn login_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let pending = authorize::load_pending(&state, query.request.as_deref(), now).await?;
        let signed_in = browser::signed_in_for(&state, &headers, &pending.request, now).await?;
        if let Some((session, user)) = signed_in {
            return Ok(proceed(&state, &pending, &session, &user, now).await);
        }
        let csrf = CsrfCookie::ensure(&state, &headers)?;
        // OpenID Connect `login_hint`: the app may already know who is signing in.
        let username = pending.request.login_hint.clone().unwrap_or_default();
        let page = login_page(
            &state,
            &pending,
            &csrf.value,
            StatusCode::OK,
            username,
            None,
        );
        Ok(csrf.apply(&state, page))
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

pub async fn login_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let posted = browser::posted_form(&state, &headers, body, FormPurpose::Login).await?;
        let (form, cookie) = (posted.fields, posted.csrf_cookie);
        let request_id = form.get("request");
        let mut pending = authorize::load_pending(&state, request_id, now).await?;
        let username = form.get("username").unwrap_or("").to_owned();
        let again = |status, message: &str| {
            login_page(
                &state,
                &pending,
                &cookie,
                status,
                username.clone(),
                Some(message.to_owned()),
            )
        };
        let Some(password) = form.get("password").filter(|_| !username.is_empty()) else {
            return Ok(again(
                StatusCode::BAD_REQUEST,
                "Enter your username and password.",
            ));
        };
        let attempt = Attempt {
            username: &username,
            address: Some(client_ip(
                peer,
                &headers,
                &state.settings.http.trusted_proxies,
            )),
        };
        let outcome =
            sign_in::check_password(&state.sign_in(), &attempt, password.to_owned(), now).await?;
        let user = match outcome {
            Outcome::Accepted(user) => *user,
            Outcome::Locked(locked) => {
                audit::login_refused(&pending.client.client_id, locked.retry_after);
                let message = format!(
                    "Too many failed sign-in attempts. Wait {} and try again.",
                    seconds(locked.retry_after)
                );
                let page = again(StatusCode::TOO_MANY_REQUESTS, &message);
                return Ok(browser::retry_after(page, locked.retry_after));
            }
            Outcome::Rejected => {
                audit::login_failure(&pending.client.client_id, None);
                // 400, not 401: a 401 must carry an HTTP authentication challenge (RFC 7235
                // §3.1), and a login form is not one.
                return Ok(again(
                    StatusCode::BAD_REQUEST,
                    "The username or password is incorrect.",
                ));
            }
        };
        if user.disabled {
            audit::login_disabled_user(&user.id);
            return Ok(again(
                StatusCode::FORBIDDEN,
                "This account is disabled. Contact your administrator.",
            ));
        }
        state
            .limiter
            .record_success(&attempt)
            .await
            .map_err(PageError::from_store)?;
        let earlier = browser::cookie(&headers, session_cookie_name(state.settings.https()));
        let new = session::start(
            &state.store,
            &state.server_keys.hasher,
            &user.id,
            now,
            state.settings.login.session_ttl,
            earlier.as_deref(),
        )
        .await?;
        authorize::record_sign_in(&state, &mut pending, &new.session, now).await?;
        audit::login_success(&user.id, &pending.client.client_id);
        let mut response = proceed(&state, &pending, &new.session, &user, now).await;
        response.headers_mut().append(
            header::SET_COOKIE,
            browser::session_cookie(&state, new.cookie_value),
        );
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|page: PageError| browser::error_page(&state, page))
}

fn login_page(
    state: &AppState,
    pending: &Pending,
    csrf_cookie: &str,
    status: StatusCode,
    username: String,
    error: Option<String>,
) -> Response {
    state.web.pages.render(
        status,
        Page::Login(LoginView {
            client_name: pending.client.client_name.clone(),
            request: pending.id.clone(),
            csrf: state
                .web
                .csrf
                .token(FormPurpose::Login, &pending.id, csrf_cookie),
            username,
            error,
        }),
    )
}

fn seconds(n: u64) -> String {
    if n == 1 {
        "1 second".into()
    } else {
        format!("{n} seconds")
    }
}
