//! The client's address (SPEC §7): the TCP peer, unless the peer is a trusted proxy; then the
//! address the proxies recorded in `Forwarded` (RFC 7239) or `X-Forwarded-For`, walking back
//! from the nearest hop past every trusted proxy. A client can write anything into those
//! headers, so only what trusted proxies appended counts.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip();
    if !is_trusted(&client) {
        return client;
    }
    // Nearest hop last: walk from the end while each hop is itself a trusted proxy.
    for hop in forwarded_for(headers).into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// The end user's address for the password grant (SPEC §7), or `None`. That request comes
/// from an app server, not from the person signing in, so its sender's address (the TCP peer,
/// or the hop that a trusted proxy in front of Valet recorded for it) is the app's, shared by
/// all its users, and is never counted. An address counts only where a trusted proxy supplied
/// it beyond a trusted hop recorded in the header: the app server is listed in
/// `http.trusted_proxies`, sends `X-Forwarded-For: <end user>`, and reaches Valet through a
/// trusted proxy that appends the app server's address. Without such a chain, `None`: the
/// username alone is counted.
pub fn forwarded_end_user(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return None;
    }
    let mut passed_trusted_hop = false;
    for hop in forwarded_for(headers).into_iter().rev() {
        if !is_trusted(&hop) {
            return passed_trusted_hop.then_some(hop);
        }
        passed_trusted_hop = true;
    }
    None
}

/// The `for=` addresses of `Forwarded`, or else the `X-Forwarded-For` list, in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let forwarded: Vec<IpAddr> = values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for")
                    .then(|| parse_node(value))
                    .flatten()
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    values("x-forwarded-for")
        .iter()
        .filter_map(|v| parse_node(v))
        .collect()
}

/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`; obfuscated or `unknown` nodes are
/// not addresses.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const PROXY: &str = "10.0.0.5:443";

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_ip(
                "198.51.100.1:5000".parse().unwrap(),
                &h,
                &nets(&["10.0.0.0/8"])
            ),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(PROXY.parse().unwrap(), &h, &[]),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_nearest_hop() {
        // The client forged the first entry; the proxies appended the real one and themselves.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")]);
        let ip = client_ip(PROXY.parse().unwrap(), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_header_wins_and_accepts_ipv6_and_ports() {
        let h = headers(&[
            (
                "forwarded",
                r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.7"#,
            ),
            ("x-forwarded-for", "198.51.100.99"),
        ]);
        let ip = client_ip(PROXY.parse().unwrap(), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_password_grant_never_counts_the_app_servers_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        let end_user = |peer: &str, xff: &str| {
            forwarded_end_user(
                peer.parse().unwrap(),
                &headers(&[("x-forwarded-for", xff)]),
                &trusted,
            )
        };
        // The app server calls Valet directly, or through the proxy: its own address.
        assert_eq!(end_user("198.51.100.1:5000", "203.0.113.9"), None);
        assert_eq!(end_user(PROXY, "198.51.100.1"), None);
        assert_eq!(end_user(PROXY, "203.0.113.9, 198.51.100.1"), None);
        // A trusted app server (10.0.0.9) forwarded the end user's address through the proxy.
        assert_eq!(
            end_user(PROXY, "1.2.3.4, 203.0.113.9, 10.0.0.9"),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn garbage_headers_leave_the_proxy_address() {
        let h = headers(&[("x-forwarded-for", "unknown, not-an-ip")]);
        let ip = client_ip(PROXY.parse().unwrap(), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    }
}
