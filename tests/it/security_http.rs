//! Security review finding 3: slow or greedy clients cannot hold the server's connections and
//! memory. Raw TCP sockets against the real server: an unterminated request head, and an idle
//! keep-alive connection, are closed after `http.header_read_timeout`; a request head over
//! 16 KiB is 431; a URI over 8 KiB is 414; a connection beyond `http.max_connections` is
//! answered 503 and closed, and a slot that frees up is used again. Every route, known or
//! not, passes the shared layers (a request id; 408 for a body that never comes).
//!
//! The timeout tests wait for the server's real timer (hyper's, not the app clock that
//! `app.advance` moves), set to 1 s here.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend_tests;
use valet::config::ConfigDuration;

use crate::harness::{self, Backend, TestApp};

backend_tests!(
    an_unterminated_request_head_is_closed_after_the_timeout,
    an_idle_keep_alive_connection_is_closed_after_the_timeout,
    an_oversized_head_is_431_and_a_long_uri_414,
    connections_beyond_the_cap_are_refused,
    the_shared_layers_answer_every_route_and_bound_a_body_that_never_comes
);

const TIMEOUT: Duration = Duration::from_secs(1);
/// Far longer than `TIMEOUT`: a connection still open after this was never going to close.
const PATIENCE: Duration = Duration::from_secs(6);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the server closes the connection; `None` if it is still open after `PATIENCE`.
/// A reset counts as closed.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status of the first response read from `stream`, waiting at most `PATIENCE`.
async fn status(stream: &mut TcpStream) -> Option<u16> {
    head(stream).await.split(' ').nth(1)?.parse().ok()
}

/// The response head (status line and headers), as far as it arrived within `PATIENCE`.
async fn head(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into()
}

async fn an_unterminated_request_head_is_closed_after_the_timeout(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.http.header_read_timeout = ConfigDuration(TIMEOUT);
    })
    .await;
    let mut slow = connect(&app).await;
    let opened = Instant::now();
    // A head that never ends: the blank line never comes.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(
        answer.is_some(),
        "an unterminated request head is still open after {PATIENCE:?}"
    );
    assert!(
        opened.elapsed() >= TIMEOUT - Duration::from_millis(100),
        "closed before the timeout: {:?}",
        opened.elapsed()
    );
    // A connection that sends nothing at all is closed as well.
    let mut silent = connect(&app).await;
    assert!(read_until_closed(&mut silent).await.is_some());
}

async fn an_idle_keep_alive_connection_is_closed_after_the_timeout(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.http.header_read_timeout = ConfigDuration(TIMEOUT);
    })
    .await;
    let mut client = connect(&app).await;
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut client)
        .await
        .expect("an idle keep-alive connection is still open");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

async fn an_oversized_head_is_431_and_a_long_uri_414(backend: Backend) {
    let app = harness::spawn(backend).await;
    let request = |target: &str, header: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n")
    };
    let send = |raw: String| {
        let app = &app;
        async move {
            let mut stream = connect(app).await;
            // The server may stop reading (and answer) before the whole request is sent.
            let _ = stream.write_all(raw.as_bytes()).await;
            status(&mut stream).await
        }
    };
    let big_header = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    assert_eq!(send(request("/healthz", &big_header)).await, Some(431));
    let near_limit = format!("X-Big: {}\r\n", "a".repeat(14 * 1024));
    assert_eq!(send(request("/healthz", &near_limit)).await, Some(200));
    let long_uri = format!("/healthz?pad={}", "a".repeat(9 * 1024));
    assert_eq!(send(request(&long_uri, "")).await, Some(414));
    let fitting_uri = format!("/healthz?pad={}", "a".repeat(7 * 1024));
    assert_eq!(send(request(&fitting_uri, "")).await, Some(200));
}

async fn connections_beyond_the_cap_are_refused(backend: Backend) {
    let app = harness::spawn_with(backend, |c| c.http.max_connections = 2).await;
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two keep-alive connections, each served once and held open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&app).await;
        stream.write_all(healthz).await.unwrap();
        assert_eq!(status(&mut stream).await, Some(200));
        held.push(stream);
    }
    let mut third = connect(&app).await;
    let _ = third.write_all(healthz).await;
    assert_eq!(status(&mut third).await, Some(503), "a third connection");
    // A slot frees when a held connection closes; a new connection is served again.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut stream = connect(&app).await;
        let _ = stream.write_all(healthz).await;
        match status(&mut stream).await {
            Some(200) => break,
            other => assert!(
                started.elapsed() < PATIENCE,
                "the freed slot was never reused: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
}

/// The layers every request passes (`http::middleware::apply`) wrap the router as a whole:
/// unknown routes and wrong methods get a request id too, HEAD is answered, and a body that
/// never arrives ends in 408 after `http.request_timeout`.
async fn the_shared_layers_answer_every_route_and_bound_a_body_that_never_comes(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.http.request_timeout = ConfigDuration(TIMEOUT);
    })
    .await;
    let exchange = |raw: &'static str| {
        let app = &app;
        async move {
            let mut stream = connect(app).await;
            stream.write_all(raw.as_bytes()).await.unwrap();
            head(&mut stream).await.to_ascii_lowercase()
        }
    };
    for (request, expected) in [
        (
            "GET /no-such-route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "404",
        ),
        (
            "GET /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "405",
        ),
        (
            "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "200",
        ),
    ] {
        let answer = exchange(request).await;
        assert!(
            answer.starts_with(&format!("http/1.1 {expected}")),
            "{request}: {answer}"
        );
        assert!(answer.contains("\r\nx-request-id: "), "{request}: {answer}");
    }
    let started = Instant::now();
    let answer = exchange(
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\nConnection: close\r\n\r\ngrant_type=",
    )
    .await;
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        started.elapsed() >= TIMEOUT,
        "answered after {:?}",
        started.elapsed()
    );
}
