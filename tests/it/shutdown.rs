//! Graceful shutdown of the real binary: on SIGTERM `/readyz` turns 503 while requests are
//! still served, then the listener closes, a request in flight still gets its answer, and the
//! process exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::fixtures::{create_contacts_api, create_service_client};
use crate::harness::process::Serve;
use crate::harness::{CONTACTS, core_over};

/// One HTTP/1.1 exchange on a fresh connection; the status code, or `None` if refused.
fn status_of(port: u16, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

fn readyz(port: u16) -> Option<u16> {
    status_of(
        port,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_readiness_then_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("valet.db").display());
    let client = {
        let core = core_over(&database_url).await;
        create_contacts_api(&core).await;
        create_service_client(&core, "read:contacts").await
    };
    let mut server = Serve::over(&database_url)
        .env("VALET_HTTP__SHUTDOWN_DELAY", "1s")
        .start();
    server.wait_ready().await;
    let port = server.port;

    // A token request whose body is only half sent when the signal arrives.
    let body = format!(
        "grant_type=client_credentials&audience={CONTACTS}&client_id={}&client_secret={}",
        client.id, client.secret
    );
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        in_flight,
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    // Nothing outside the process tells when it has read the headers: give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.sigterm();
    let signalled = Instant::now();
    let mut saw_503 = false;
    while signalled.elapsed() < Duration::from_millis(800) {
        if readyz(port) == Some(503) {
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_503, "/readyz must answer 503 while draining");

    // The listener closes after the delay (1 s); the request in flight still completes.
    let draining = Instant::now();
    while readyz(port).is_some() {
        assert!(
            draining.elapsed() < Duration::from_millis(1300),
            "no new connections after the delay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    in_flight.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access_token"), "{answer}");

    let status = server.exit_status(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", server.logs());
}
