//! The client's address (SPEC §7): the TCP peer, unless the peer is a trusted proxy; then the
//! address the proxies recorded in the ONE configured header (`http.client_ip_header`:
//! `X-Forwarded-For` by default, or RFC 7239 `Forwarded`), walking back from the nearest hop
//! past every trusted proxy. A client can write anything into such headers, so only what the
//! trusted proxies appended counts, and a header the proxy does not write (a client's own
//! `Forwarded` behind an nginx that sets `X-Forwarded-For`) is never read.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::{ClientIpHeader, TrustedProxies};

pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.networks.iter().any(|net| net.contains(ip));
    let mut client = peer.ip();
    if !is_trusted(&client) {
        return client;
    }
    // Nearest hop last: walk from the end while each hop is itself a trusted proxy. A hop that
    // is not an address (`unknown`, an obfuscated node, garbage) stops the walk: nothing to
    // its left can be believed.
    for hop in forwarded_for(headers, &trusted.header).into_iter().rev() {
        let Some(hop) = hop else { break };
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
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.networks.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return None;
    }
    let mut passed_trusted_hop = false;
    for hop in forwarded_for(headers, &trusted.header).into_iter().rev() {
        let hop = hop?;
        if !is_trusted(&hop) {
            return passed_trusted_hop.then_some(hop);
        }
        passed_trusted_hop = true;
    }
    None
}

/// The hops of the configured header, in order; `None` for one that is not an address.
fn forwarded_for(headers: &HeaderMap, header: &ClientIpHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ClientIpHeader::Forwarded => "forwarded",
        ClientIpHeader::List(name) => name.as_str(),
    };
    let elements = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok())
        .flat_map(|v| match v {
            Some(v) => v.split(',').map(|s| Some(s.trim())).collect::<Vec<_>>(),
            None => vec![None],
        });
    match header {
        ClientIpHeader::Forwarded => elements
            .map(|element| {
                element?.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value))
                        .flatten()
                })
            })
            .collect(),
        ClientIpHeader::List(_) => elements.map(|v| v.and_then(parse_node)).collect(),
    }
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

    fn proxies(list: &[&str], header: ClientIpHeader) -> TrustedProxies {
        TrustedProxies {
            networks: list.iter().map(|n| n.parse().unwrap()).collect(),
            header,
        }
    }

    fn xff(list: &[&str]) -> TrustedProxies {
        proxies(list, ClientIpHeader::default())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5:443";

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_ip(
                "198.51.100.1:5000".parse().unwrap(),
                &h,
                &xff(&["10.0.0.0/8"])
            ),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(PROXY.parse().unwrap(), &h, &xff(&[])),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_nearest_hop() {
        // The client forged the first entry; the proxies appended the real one and themselves.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")]);
        let found = client_ip(PROXY.parse().unwrap(), &h, &xff(&["10.0.0.0/8"]));
        assert_eq!(found, ip("203.0.113.9"));
    }

    #[test]
    fn only_the_configured_header_counts() {
        // Finding 5: behind a proxy that appends to X-Forwarded-For, a client's own
        // `Forwarded` must not win.
        let h = headers(&[
            ("forwarded", "for=198.51.100.66"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "192.0.2.44"),
        ]);
        let peer = PROXY.parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &xff(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
        let forwarded = proxies(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        assert_eq!(client_ip(peer, &h, &forwarded), ip("198.51.100.66"));
        let real_ip = proxies(&["10.0.0.0/8"], ClientIpHeader::List("x-real-ip".into()));
        assert_eq!(client_ip(peer, &h, &real_ip), ip("192.0.2.44"));
        // The configured header absent: the proxy's own address, never another header's.
        let h = headers(&[("forwarded", "for=198.51.100.66")]);
        assert_eq!(client_ip(peer, &h, &xff(&["10.0.0.0/8"])), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_accepts_ipv6_and_ports() {
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.7"#,
        )]);
        let found = client_ip(
            PROXY.parse().unwrap(),
            &h,
            &proxies(&["10.0.0.0/8"], ClientIpHeader::Forwarded),
        );
        assert_eq!(found, ip("2001:db8::1"));
    }

    #[test]
    fn the_password_grant_never_counts_the_app_servers_address() {
        let trusted = proxies(
            &["10.0.0.0/8"],
            ClientIpHeader::List("x-forwarded-for".into()),
        );
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
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let h = headers(&[("x-forwarded-for", "unknown, not-an-ip")]);
        let found = client_ip(PROXY.parse().unwrap(), &h, &xff(&["10.0.0.0/8"]));
        assert_eq!(found, ip("10.0.0.5"));
        // A forged address left of garbage is not believed either.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, junk, 10.0.0.7")]);
        let found = client_ip(PROXY.parse().unwrap(), &h, &xff(&["10.0.0.0/8"]));
        assert_eq!(found, ip("10.0.0.7"));
    }
}
