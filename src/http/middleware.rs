//! Layers every route shares: the URI limit, request ids, one tracing span per request, a
//! timeout, the body limit, and failing fast when the database goes away. (The request head's size and read time are bounded per
//! connection, in `server.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::browser;
use super::client_ip::client_ip;
use super::page_error::PageError;
use super::rate_limit;
use super::state::AppState;
use crate::config::TrustedProxies;
use crate::oauth::OAuthError;
use crate::oauth::device::DEVICE_PATH;
use crate::oauth::metadata::{AUTHORIZE_PATH, END_SESSION_PATH};
use crate::store::StoreError;

/// The longest request target accepted (SPEC §7); a longer one is 414 before any handler or
/// log line sees it.
pub const MAX_URI_BYTES: usize = 8 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers every request passes, outermost first, around `router`. They wrap the router
/// as one service: `Router::layer` would wrap every route in each of them, each a boxed
/// service cloned and a boxed future allocated per request and layer. The result is final:
/// a route or fallback added to it afterwards would bypass every one of these layers.
pub fn apply(
    router: Router,
    body_limit: usize,
    timeout: Duration,
    trusted_proxies: Arc<TrustedProxies>,
) -> Router {
    let around = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(limit_uri))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request<_>| request_span(request, &trusted_proxies))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(router);
    Router::new().fallback_service(around)
}

/// RFC 9112 §3: a server that receives a request-target longer than it wishes to parse
/// answers 414 (URI Too Long).
async fn limit_uri(request: Request<axum::body::Body>, next: Next) -> Response {
    let uri = request.uri();
    let length = uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return (StatusCode::URI_TOO_LONG, "URI too long\n").into_response();
    }
    next.run(request).await
}

/// The path only: query strings can carry codes and state, which stay out of the logs. The
/// client is the real one behind trusted proxies.
fn request_span<B>(request: &Request<B>, trusted_proxies: &TrustedProxies) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| client_ip(peer.0, request.headers(), trusted_proxies).to_string())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id, client = %client)
}

/// Requests already waiting on the database when the breaker opens (`store::breaker`) are
/// answered at once, as later ones are, instead of waiting out the pool's acquire timeout:
/// `503 temporarily_unavailable` with `Retry-After`, or the 503 page on HTML routes. Dropping
/// the handler rolls back whatever it had begun.
pub async fn fail_fast_on_outage(
    State(state): State<AppState>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let Some(mut outage) = state.store.outages() else {
        return next.run(request).await;
    };
    if *outage.borrow_and_update() {
        // Already open: every store call fails at once anyway.
        return next.run(request).await;
    }
    let page = is_page(request.uri().path());
    tokio::select! {
        response = next.run(request) => response,
        Ok(_) = outage.wait_for(|open| *open) => {
            let error = StoreError::Unavailable("the database stopped answering".into());
            if page {
                browser::error_page(&state, PageError::from_store(error))
            } else {
                OAuthError::from(error).into_response()
            }
        }
    }
}

/// The routes that answer people with HTML.
pub fn is_page(path: &str) -> bool {
    [
        AUTHORIZE_PATH,
        "/login",
        "/consent",
        END_SESSION_PATH,
        DEVICE_PATH,
    ]
    .contains(&path)
}

/// The per-address flood limit (`http::rate_limit`), in front of every route; the routes it
/// does not cover pass untouched.
pub async fn limit_per_address(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !rate_limit::is_limited(path) {
        return next.run(request).await;
    }
    let address = client_ip(
        peer,
        request.headers(),
        &state.settings.http.trusted_proxies,
    );
    match state.web.rate_limits.check_address(address) {
        Ok(()) => next.run(request).await,
        Err(seconds) if is_page(path) => browser::retry_after(
            browser::error_page(&state, PageError::too_many_requests(seconds)),
            seconds,
        ),
        Err(seconds) => {
            OAuthError::rate_limited(seconds, "too many requests from this address; slow down")
                .into_response()
        }
    }
}
