//! Parsed value types shared by every layer: once a value is one of these, it is valid.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, as in JWT `iat`/`exp` and in every store column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    pub fn plus(self, duration: std::time::Duration) -> Self {
        let secs = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(secs))
    }

    /// RFC 3339, as the CLI prints timestamps.
    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.0.to_string())
    }
}

/// The id of one user grant: a user's authorization of a client. Codes, refresh families
/// and access tokens (at the head of their `jti`) carry it, so one revocation reaches them all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantId(String);

impl GrantId {
    /// A new random id (a UUID: it must not contain the `.` that ends it inside a `jti`).
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// An id read back from the store or from a token.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for GrantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A loopback host: `localhost`, or a loopback IP literal.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An address Valet itself sends requests to (a client's `jwks_uri`, a back-channel logout
/// URI): absolute, no fragment, https (plain http only to this machine).
pub fn is_server_endpoint(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| {
        url.fragment().is_none()
            && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(&url)))
    })
}

/// The unit a client address is counted by: an IPv4 address (also when IPv4-mapped), or
/// the /64 of an IPv6 one, since an IPv6 client usually controls a whole /64.
pub fn address_unit(address: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match address {
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = ip.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// A browser origin as a client registers it and as the `Origin` header carries it:
/// scheme, host and port only, serialised exactly as browsers do (`https://app.example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    pub fn parse(text: &str) -> Option<Self> {
        url::Url::parse(text)
            .is_ok_and(|url| {
                matches!(url.scheme(), "https" | "http")
                    && url.origin().ascii_serialization() == text
            })
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The JWS algorithms Valet signs with (RFC 7518 §3.1; EdDSA from RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA]
            .into_iter()
            .find(|a| a.as_str() == text)
    }
}

/// The grant types of RFC 6749, by their wire names. The set is closed (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    Implicit,
    Password,
    ClientCredentials,
    RefreshToken,
    /// RFC 8628: a device without a browser polls while the person signs in elsewhere.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 6] = [
        GrantType::AuthorizationCode,
        GrantType::Implicit,
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
        GrantType::DeviceCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::Implicit => "implicit",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// Grants a public client may never use: both rely on a client secret (SPEC §2).
    pub fn needs_confidential_client(self) -> bool {
        matches!(self, GrantType::ClientCredentials | GrantType::Password)
    }

    /// Grants whose tokens are issued only after a browser visit to `/authorize`.
    pub fn uses_redirect(self) -> bool {
        matches!(self, GrantType::AuthorizationCode | GrantType::Implicit)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown grant type `{0}` (expected one of authorization_code, implicit, password, client_credentials, refresh_token, urn:ietf:params:oauth:grant-type:device_code)"
)]
pub struct UnknownGrantType(pub String);

impl FromStr for GrantType {
    type Err = UnknownGrantType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGrantType(s.to_owned()))
    }
}

/// A set of scope tokens, RFC 6749 §3.3. Ordered so that output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

/// On the wire and at rest a scope is its space-delimited text (RFC 6749 §3.3).
impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ScopeSet::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeSyntaxError {
    #[error("scope tokens are separated by single spaces, with none leading or trailing")]
    Spacing,
    #[error("scope token `{0}` contains a character that RFC 6749 section 3.3 does not allow")]
    Character(String),
}

impl ScopeSet {
    /// Parse `scope = scope-token *( SP scope-token )` strictly; the empty string is the empty set.
    pub fn parse(text: &str) -> Result<Self, ScopeSyntaxError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let mut set = BTreeSet::new();
        for token in text.split(' ') {
            if token.is_empty() {
                return Err(ScopeSyntaxError::Spacing);
            }
            if !token.bytes().all(is_scope_char) {
                return Err(ScopeSyntaxError::Character(printable(token)));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        Self(tokens.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: printable ASCII without `"` and `\`.
fn is_scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// Render untrusted text so it can be echoed in an error description (RFC 6749 §5.2 charset).
pub fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A client identifier: printable ASCII without spaces (SPEC §7), so `billing.svc:eu+1` works.
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_per_ipv4_address_or_ipv6_64() {
        let unit = |a: &str| address_unit(a.parse().unwrap()).to_string();
        assert_eq!(unit("203.0.113.7"), "203.0.113.7");
        assert_eq!(unit("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(unit("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
    }

    #[test]
    fn server_endpoints_are_https_or_loopback_http_without_fragment() {
        for good in [
            "https://rp.example.com/bc",
            "http://localhost:9/x",
            "http://[::1]/x",
        ] {
            assert!(is_server_endpoint(good), "{good}");
        }
        for bad in [
            "http://rp.example.com/bc",
            "https://rp.example.com/#f",
            "relative",
            "ftp://x/",
        ] {
            assert!(!is_server_endpoint(bad), "{bad}");
        }
    }

    #[test]
    fn scope_parses_and_prints_sorted() {
        let set = ScopeSet::parse("write:a read:a").unwrap();
        assert_eq!(set.to_string(), "read:a write:a");
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn scope_rejects_bad_spacing_and_characters() {
        assert_eq!(ScopeSet::parse("a  b"), Err(ScopeSyntaxError::Spacing));
        assert_eq!(ScopeSet::parse(" a"), Err(ScopeSyntaxError::Spacing));
        assert_eq!(ScopeSet::parse("a "), Err(ScopeSyntaxError::Spacing));
        assert!(matches!(
            ScopeSet::parse("a\"b"),
            Err(ScopeSyntaxError::Character(_))
        ));
        assert!(matches!(
            ScopeSet::parse("a\\b"),
            Err(ScopeSyntaxError::Character(_))
        ));
        assert!(matches!(
            ScopeSet::parse("caf\u{e9}"),
            Err(ScopeSyntaxError::Character(_))
        ));
    }

    #[test]
    fn grant_types_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>().unwrap(), g);
        }
        assert!("token".parse::<GrantType>().is_err());
    }

    #[test]
    fn client_ids_allow_printable_ascii_only() {
        assert!(is_valid_client_id("billing.svc:eu+1"));
        assert!(!is_valid_client_id("has space"));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id("caf\u{e9}"));
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(UnixTime(0).to_rfc3339(), "1970-01-01T00:00:00Z");
    }
}

/// The claims a request named in the OpenID Connect `claims` parameter (Core §5.5), by where
/// they go. Only names are kept: Valet releases what it has for them, and `essential`,
/// `value` and `values` change nothing it can honour (§5.5.1 lets it ignore them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedClaims {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token: Vec<String>,
}

impl RequestedClaims {
    pub fn is_empty(&self) -> bool {
        self.userinfo.is_empty() && self.id_token.is_empty()
    }
}
