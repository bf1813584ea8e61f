//! Redirect URIs (RFC 6749 §3.1.2, RFC 9700 §4.1, RFC 8252 §7): what may be registered.

use url::{Host, Url};

/// Check a redirect URI at registration. Accepted: `https`; `http` only on a loopback address
/// or `localhost` (RFC 8252 §7.3); a private-use scheme in reverse-domain form such as
/// `com.example.app:/callback` (RFC 8252 §7.1). Never a fragment (RFC 6749 §3.1.2).
pub fn validate_registration(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri)
        .map_err(|e| format!("redirect URI `{uri}` is not an absolute URI ({e})"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "redirect URI `{uri}` must not contain a fragment (RFC 6749 section 3.1.2)"
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "redirect URI `{uri}` uses plain http on a non-loopback host; use https (http is allowed only for 127.0.0.1, [::1] and localhost)"
        )),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "redirect URI `{uri}` has an unsupported scheme; use https, loopback http, or a reverse-domain scheme like com.example.app:/callback"
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_rules() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(validate_registration(ok).is_ok(), "{ok}");
        }
        for bad in [
            "not a uri",
            "/relative",
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
        ] {
            assert!(validate_registration(bad).is_err(), "{bad}");
        }
    }
}
