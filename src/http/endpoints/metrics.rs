//! `GET /metrics`: Prometheus text format. Gauges that describe the present (pool, store round
//! trip, key age) are read at scrape time.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let (open, idle) = state.store.pool_stats();
    metrics.pool_connections.set(i64::from(open));
    metrics
        .pool_idle
        .set(i64::try_from(idle).unwrap_or(i64::MAX));
    let started = Instant::now();
    if state.store.ping().await.is_ok() {
        metrics
            .store_ping_seconds
            .set(started.elapsed().as_secs_f64());
    }
    let created = state.keys.current().current_created_at();
    metrics
        .signing_key_age_seconds
        .set(state.clock.now().0 - created.0);
    let mut response = metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Count and time every request by its route pattern (never the raw path, which would let
/// anyone create label values at will).
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
