//! The accept loop (SPEC §7, bounded resources): HTTP/1.1 connections with a header-read
//! timeout that also closes idle keep-alive connections, a request head of at most 16 KiB
//! (a larger one is 431), at most `http.max_connections` connections at once (one more is
//! answered 503 and closed), and a graceful drain: after `shutdown` the listener closes, idle
//! connections close, and requests in flight finish.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The largest request head (request line and header fields) accepted (SPEC §7).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What bounds each connection; from `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// What a connection beyond the cap is told before it is closed: nginx retries a 503 on
/// another replica (`proxy_next_upstream … http_503`).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n";

const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Serve `router` on `listener` until `shutdown` completes; then close the listener and
/// return once every connection has finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        // An unterminated head cannot grow the read buffer past this either.
        .max_buf_size(MAX_HEAD_BYTES);
    // Refusals are logged at most once a minute, with how many there were.
    let mut refused: u64 = 0;
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            refused += 1;
            if last_warning.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    "connection limit reached: refusing new connections with 503"
                );
                last_warning = Some(Instant::now());
                refused = 0;
            }
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answer 503 without waiting for the client (a full send buffer just loses the answer) and
/// close.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(BUSY);
}

/// Errors of one connection (reset before accept) are nobody's concern; anything else (out of
/// file descriptors) gets a pause so that the loop does not spin.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %error, "accept failed; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
