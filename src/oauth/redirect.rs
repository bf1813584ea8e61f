//! Redirect URIs (RFC 6749 §3.1.2, RFC 9700 §4.1, RFC 8252 §7): what may be registered, and
//! matching a requested URI against the registered ones.

use crate::domain::is_loopback_host;
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
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(format!(
            "redirect URI `{uri}` uses plain http on a non-loopback host; use https (http is allowed only for 127.0.0.1, [::1] and localhost)"
        )),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "redirect URI `{uri}` has an unsupported scheme; use https, loopback http, or a reverse-domain scheme like com.example.app:/callback"
        )),
    }
}

/// A redirect URI that matched a registration: the only way to obtain one, so nothing can
/// redirect to an address that was not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRedirect(String);

impl MatchedRedirect {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectMismatch {
    #[error(
        "this client has several redirect URIs registered, so the request must name one with redirect_uri"
    )]
    Required,
    #[error(
        "an OpenID Connect request (scope openid) must name its redirect_uri (OpenID Connect Core section 3.1.2.1)"
    )]
    RequiredForOpenId,
    #[error("the redirect_uri `{requested}` is not registered for this client")]
    NotRegistered { requested: String },
}

/// Exact string comparison (RFC 9700 §4.1.3), except that a loopback IP literal with `http`
/// may use any port (RFC 8252 §7.3). Without `redirect_uri`, the one registered URI is used.
pub fn matched(
    registered: &[String],
    requested: Option<&str>,
) -> Result<MatchedRedirect, RedirectMismatch> {
    let Some(requested) = requested else {
        return match registered {
            [only] => Ok(MatchedRedirect(only.clone())),
            _ => Err(RedirectMismatch::Required),
        };
    };
    if registered.iter().any(|r| r == requested)
        || registered
            .iter()
            .any(|r| same_but_loopback_port(r, requested))
    {
        return Ok(MatchedRedirect(requested.to_owned()));
    }
    Err(RedirectMismatch::NotRegistered {
        requested: requested.to_owned(),
    })
}

fn same_but_loopback_port(registered: &str, requested: &str) -> bool {
    let (Ok(mut registered), Ok(mut requested)) = (Url::parse(registered), Url::parse(requested))
    else {
        return false;
    };
    let loopback_http = |url: &Url| url.scheme() == "http" && is_loopback_ip(url);
    if !loopback_http(&registered) || !loopback_http(&requested) {
        return false;
    }
    let _ = registered.set_port(None);
    let _ = requested.set_port(None);
    registered == requested
}

/// A loopback IP literal: the only hosts whose port may vary (RFC 8252 §7.3).
fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matching_is_exact() {
        let registered = uris(&["https://app.example.com/cb"]);
        assert!(matched(&registered, Some("https://app.example.com/cb")).is_ok());
        for near_miss in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://APP.example.com/cb",
            "https://app.example.com:443/cb",
            "https://app.example.com/c%62",
            "http://app.example.com/cb",
        ] {
            assert!(
                matched(&registered, Some(near_miss)).is_err(),
                "{near_miss}"
            );
        }
    }

    #[test]
    fn loopback_ip_literals_may_use_any_port() {
        let registered = uris(&[
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
        ]);
        assert_eq!(
            matched(&registered, Some("http://127.0.0.1:53187/cb"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:53187/cb"
        );
        assert!(matched(&registered, Some("http://[::1]:9/cb")).is_ok());
        assert!(matched(&registered, Some("http://127.0.0.1:53187/other")).is_err());
        assert!(
            matched(&registered, Some("http://localhost:3000/cb")).is_err(),
            "not an IP literal"
        );
    }

    #[test]
    fn redirect_uri_may_be_omitted_only_with_one_registration() {
        assert_eq!(
            matched(&uris(&["https://a.example/cb"]), None)
                .unwrap()
                .as_str(),
            "https://a.example/cb"
        );
        assert_eq!(
            matched(
                &uris(&["https://a.example/cb", "https://b.example/cb"]),
                None
            ),
            Err(RedirectMismatch::Required)
        );
        assert_eq!(matched(&[], None), Err(RedirectMismatch::Required));
    }

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
