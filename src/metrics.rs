//! Prometheus metrics (text exposition format at `/metrics`): requests and latency by route
//! and status, tokens issued by grant type and audience, failed logins and limiter refusals,
//! store pool use and round-trip time, and the age of the signing key. One registry per
//! server, so that tests running several servers in one process do not mix their numbers.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub grant_type: String,
    pub audience: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: LatencyFamily,
    pub tokens_issued: Family<TokenLabels, Counter>,
    pub login_failures: Counter,
    pub limiter_refusals: Counter,
    pub pool_connections: Gauge,
    pub pool_idle: Gauge,
    pub store_ping_seconds: Gauge<f64, AtomicU64>,
    pub signing_key_age_seconds: Gauge,
}

/// 1 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("valet");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access tokens issued, by grant type and audience",
            tokens_issued.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "login_failures",
            "Failed sign-ins (login page and password grant)",
            login_failures.clone(),
        );
        let limiter_refusals = Counter::default();
        registry.register(
            "limiter_refusals",
            "Sign-ins refused by the failed-login limiter",
            limiter_refusals.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "store_pool_connections",
            "Open connections to the store",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "store_pool_idle_connections",
            "Idle connections to the store",
            pool_idle.clone(),
        );
        let store_ping_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_ping_seconds",
            "Round trip of a trivial store query, at scrape time",
            store_ping_seconds.clone(),
        );
        let signing_key_age_seconds = Gauge::default();
        registry.register(
            "signing_key_age_seconds",
            "Age of the current signing key",
            signing_key_age_seconds.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            tokens_issued,
            login_failures,
            limiter_refusals,
            pool_connections,
            pool_idle,
            store_ping_seconds,
            signing_key_age_seconds,
        }
    }
}

impl Metrics {
    pub fn token_issued(&self, grant_type: &str, audience: &str) {
        self.tokens_issued
            .get_or_create(&TokenLabels {
                grant_type: grant_type.to_owned(),
                audience: audience.to_owned(),
            })
            .inc();
    }

    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
