//! Layers every route shares: the URI limit, request ids, one tracing span per request, a
//! timeout and the body limit. (The request head's size and read time are bounded per
//! connection, in `server.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
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

use super::client_ip::client_ip;
use crate::config::TrustedProxies;

/// The longest request target accepted (SPEC §7); a longer one is 414 before any handler or
/// log line sees it.
pub const MAX_URI_BYTES: usize = 8 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn apply(
    router: Router,
    body_limit: usize,
    timeout: Duration,
    trusted_proxies: Arc<TrustedProxies>,
) -> Router {
    router.layer(DefaultBodyLimit::max(body_limit)).layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(limit_uri))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(move |request: &Request<_>| {
                        request_span(request, &trusted_proxies)
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                timeout,
            )),
    )
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
