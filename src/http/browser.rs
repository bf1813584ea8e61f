//! What the browser-facing endpoints share: cookies, the CSRF cookie, page errors, and
//! delivering an authorization response by redirect or form post.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};

use super::extract;
use super::pages::{DeviceView, ErrorView, FormPostView, Page};
use crate::crypto::random_token;
use crate::domain::UnixTime;
use crate::http::page_error::PageError;
use crate::http::state::AppState;
use crate::login::csrf::{FormPurpose, csrf_cookie_name};
use crate::login::session::{self, session_cookie_name};
use crate::oauth::Params;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::response_mode::{self, AuthorizationResponse, Delivery};
use crate::store::{Session, User};

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when the issuer is https (SPEC §7),
/// where the names also carry the `__Host-` prefix (no `Domain` is ever set).
fn set_cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    max_age: Option<Duration>,
) -> HeaderValue {
    let mut cookie = Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(state.settings.https());
    if let Some(age) = max_age {
        let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        cookie = cookie.max_age(cookie::time::Duration::seconds(secs));
    }
    HeaderValue::from_str(&cookie.build().encoded().to_string())
        .unwrap_or(HeaderValue::from_static(""))
}

pub fn session_cookie(state: &AppState, value: String) -> HeaderValue {
    set_cookie(
        state,
        session_cookie_name(state.settings.https()),
        value,
        Some(state.settings.login.session_ttl),
    )
}

pub fn clear_session_cookie(state: &AppState) -> HeaderValue {
    let name = session_cookie_name(state.settings.https());
    set_cookie(state, name, String::new(), Some(Duration::ZERO))
}

/// The browser's CSRF cookie value; a new one (to be set on the response) if it has none.
pub struct CsrfCookie {
    pub value: String,
    fresh: bool,
}

impl CsrfCookie {
    pub fn ensure(state: &AppState, headers: &HeaderMap) -> Result<Self, PageError> {
        match cookie(headers, csrf_cookie_name(state.settings.https())).filter(|v| !v.is_empty()) {
            Some(value) => Ok(Self {
                value,
                fresh: false,
            }),
            None => Ok(Self {
                value: random_token().map_err(PageError::internal)?,
                fresh: true,
            }),
        }
    }

    /// Add the `Set-Cookie` header if the cookie is new.
    pub fn apply(&self, state: &AppState, mut response: Response) -> Response {
        if self.fresh {
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    state,
                    csrf_cookie_name(state.settings.https()),
                    self.value.clone(),
                    None,
                ),
            );
        }
        response
    }
}

/// A form posted from one of our pages, its CSRF token checked.
pub struct PostedForm {
    pub fields: Params,
    /// The browser's CSRF cookie, for a page rendered again in answer.
    pub csrf_cookie: String,
}

/// Read a posted form and check its `csrf` field against the browser's cookie for `purpose`,
/// bound to the form's `request` field (empty where the form has none).
pub async fn posted_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    purpose: FormPurpose,
) -> Result<PostedForm, PageError> {
    let fields = extract::oauth_form(headers, body, state.settings.http.body_limit)
        .await
        .map_err(|_| PageError::bad_form())?;
    checked_form(state, headers, fields, purpose)
}

/// [`posted_form`] for fields already read.
pub fn checked_form(
    state: &AppState,
    headers: &HeaderMap,
    fields: Params,
    purpose: FormPurpose,
) -> Result<PostedForm, PageError> {
    let csrf_cookie = cookie(headers, csrf_cookie_name(state.settings.https())).unwrap_or_default();
    let binding = fields.get("request").unwrap_or("");
    let posted = fields.get("csrf").unwrap_or("");
    if csrf_cookie.is_empty()
        || !state
            .web
            .csrf
            .verify(purpose, binding, &csrf_cookie, posted)
    {
        return Err(PageError::bad_form());
    }
    Ok(PostedForm {
        fields,
        csrf_cookie,
    })
}

/// The signed-in person, if the request carries a live session of an enabled user.
pub async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<Option<(Session, User)>, PageError> {
    session::current(
        &state.store,
        &state.server_keys.hasher,
        cookie(headers, session_cookie_name(state.settings.https())).as_deref(),
        now,
    )
    .await
    .map_err(PageError::from_store)
}

/// The signed-in person, if their sign-in is also recent enough for `request` (`prompt=login`,
/// `max_age`); otherwise they must sign in again.
pub async fn signed_in_for(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    now: UnixTime,
) -> Result<Option<(Session, User)>, PageError> {
    let found = signed_in(state, headers, now).await?;
    Ok(found.filter(|(session, _)| request.accepts_sign_in(session, now)))
}

pub fn error_page(state: &AppState, error: PageError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let page = state.web.pages.render(
        status,
        Page::Error(ErrorView {
            title: error.title.to_owned(),
            message: error.message,
            developer_detail: error.developer_detail,
        }),
    );
    // A 503 (the store is away) is worth retrying soon (RFC 9110 §15.6.4).
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return retry_after(page, 1);
    }
    page
}

/// A page refusing for a while (the login limiter): `Retry-After` says how long (RFC 9110
/// §10.2.3).
pub fn retry_after(mut page: Response, seconds: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        page.headers_mut().insert(header::RETRY_AFTER, value);
    }
    page
}

/// A 303 to one of our own pages or to the client: never re-posts the form (RFC 9700 §4.12),
/// and never leaks the URL through `Referer`.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, value);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Send an authorization response to the client in its response mode.
pub fn deliver(state: &AppState, response: AuthorizationResponse) -> Response {
    match response_mode::deliver(response, state.settings.issuer_str()) {
        Delivery::Redirect(location) => see_other(&location),
        Delivery::FormPost { action, fields } => state.web.pages.render(
            StatusCode::OK,
            Page::FormPost(FormPostView {
                redirect_uri: action,
                fields,
            }),
        ),
    }
}

/// `/login?request=…` or `/consent?request=…`.
pub fn page_url(path: &str, request_id: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request", request_id)
        .finish();
    format!("{path}?{query}")
}

/// How a device sign-in ended, for the person at the browser.
pub fn device_answered(state: &AppState, approved: bool, still_pending: bool) -> Response {
    let done = match (still_pending, approved) {
        (false, _) => "This code has expired or was already used. Start again on your device.",
        (true, true) => "Your device is connected. You can close this window and return to it.",
        (true, false) => "The request was denied. Your device will not be connected.",
    };
    let view = DeviceView {
        csrf: String::new(),
        user_code: String::new(),
        error: None,
        done: Some(done.into()),
    };
    state.web.pages.render(StatusCode::OK, Page::Device(view))
}
