//! Graceful shutdown of the real binary: on SIGTERM `/readyz` turns 503 while requests are
//! still served, then the listener closes, a request in flight still gets its answer, and the
//! process exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{CONTACTS, TEST_SECRET, clean_command, free_port, run_cli};

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

fn wait_for_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_readiness_then_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cli = |args: &[&str]| {
        let mut cmd = clean_command();
        cmd.current_dir(dir.path())
            .env("VALET_SECRET", TEST_SECRET)
            .args(args);
        run_cli(&mut cmd).0
    };
    cli(&[
        "api",
        "create",
        "--identifier",
        CONTACTS,
        "--name",
        "Contacts",
        "--scope",
        "read:contacts",
        "--json",
    ]);
    let client = cli(&[
        "client",
        "create",
        "--name",
        "svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read:contacts",
        "--audience",
        CONTACTS,
        "--json",
    ]);
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );

    let mut child = clean_command()
        .current_dir(dir.path())
        .env("VALET_SECRET", TEST_SECRET)
        .env("VALET_LISTEN", format!("127.0.0.1:{port}"))
        .env("VALET_HTTP__SHUTDOWN_DELAY", "1s")
        .arg("serve")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while readyz(port) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A token request whose body is only half sent when the signal arrives.
    let body = format!(
        "grant_type=client_credentials&audience={CONTACTS}&client_id={id}&client_secret={secret}"
    );
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        in_flight,
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let signalled = Instant::now();
    let mut saw_503 = false;
    while signalled.elapsed() < Duration::from_millis(800) {
        if readyz(port) == Some(503) {
            saw_503 = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_503, "/readyz must answer 503 while draining");

    // The listener closes after the delay; the request in flight still completes.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(readyz(port), None, "no new connections after the delay");
    in_flight.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access_token"), "{answer}");

    assert_eq!(wait_for_exit(&mut child, Duration::from_secs(10)), 0);
}
