//! `valet health`: one plain-HTTP GET with a short timeout, so a container HEALTHCHECK needs
//! no curl in the image. It talks to the server beside it, never across a network, so plain
//! HTTP/1.1 over a socket is all it takes.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::CliError;

const TIMEOUT: Duration = Duration::from_secs(3);

pub fn probe(url: &str) -> Result<(), CliError> {
    let parsed =
        url::Url::parse(url).map_err(|e| CliError::invalid(format!("--url `{url}`: {e}")))?;
    if parsed.scheme() != "http" {
        return Err(CliError::invalid(
            "--url must be a plain http URL (the server beside this process)",
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| CliError::invalid("--url has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let status = get(host, port, &path_and_query(&parsed))
        .map_err(|e| CliError::Other(format!("{url}: {e}")))?;
    if status == 200 {
        println!("{url}: 200");
        Ok(())
    } else {
        Err(CliError::Other(format!("{url}: status {status}")))
    }
}

fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

fn get(host: &str, port: u16, path: &str) -> std::io::Result<u16> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}
