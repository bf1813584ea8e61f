//! Layers every route shares: request ids, one tracing span per request, a timeout and the
//! body limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{HeaderName, Request, StatusCode};
use ipnet::IpNet;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::client_ip::client_ip;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn apply(
    router: Router,
    body_limit: usize,
    timeout: Duration,
    trusted_proxies: Arc<[IpNet]>,
) -> Router {
    router.layer(DefaultBodyLimit::max(body_limit)).layer(
        ServiceBuilder::new()
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

/// The path only: query strings can carry codes and state, which stay out of the logs. The
/// client is the real one behind trusted proxies.
fn request_span<B>(request: &Request<B>, trusted_proxies: &[IpNet]) -> tracing::Span {
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
