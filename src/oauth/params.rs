//! Request parameters: `application/x-www-form-urlencoded` bodies and query strings
//! (RFC 6749 §3.1, §3.2, Appendix B). A parameter sent twice is refused; one sent without a
//! value counts as omitted (§3.1).

use std::collections::HashMap;

use super::OAuthError;
use crate::domain::printable;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(encoded: &[u8]) -> Result<Self, OAuthError> {
        Self::parse_allowing_nul(encoded, &[])
    }

    /// As [`Params::parse`], but the values of `nul_ok` may hold a NUL: where a bad value has
    /// a defined answer of its own, such as an introspected `token` (RFC 7662 §2.2: any token
    /// that is not active is `{"active": false}`). The caller must not store such a value.
    pub fn parse_allowing_nul(encoded: &[u8], nul_ok: &[&str]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded) {
            if map.contains_key(name.as_ref()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` was sent more than once",
                    printable(&name)
                )));
            }
            // No legitimate parameter holds a NUL, and PostgreSQL text cannot store one.
            if name.contains('\0') || (value.contains('\0') && !nul_ok.contains(&name.as_ref())) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` contains a NUL character",
                    printable(&name)
                )));
            }
            map.insert(name.into_owned(), value.into_owned());
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self(map))
    }

    /// The name of a parameter whose value is longer than `max` bytes, if any (the first in
    /// name order, so the answer does not depend on hashing).
    pub fn longer_than(&self, max: usize) -> Option<&str> {
        self.0
            .iter()
            .filter(|(_, value)| value.len() > max)
            .map(|(name, _)| name.as_str())
            .min()
    }

    /// These parameters less `names`.
    pub fn without(mut self, names: &[&str]) -> Self {
        self.0.retain(|name, _| !names.contains(&name.as_str()));
        self
    }

    /// These parameters with `name` set to `value` where the request sent none.
    pub fn with_default(mut self, name: &str, value: &str) -> Self {
        self.0
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("the `{name}` parameter is required"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    #[test]
    fn decodes_and_drops_empty_values() {
        let p = Params::parse(b"grant_type=client_credentials&scope=read%3Aa+write%3Ab&audience=")
            .unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("read:a write:b"));
        assert_eq!(p.get("audience"), None);
    }

    #[test]
    fn duplicates_are_invalid_request() {
        let e = Params::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.contains("`scope`"));
    }

    #[test]
    fn nul_characters_are_invalid_request() {
        assert_eq!(
            Params::parse(b"audience=%00").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn nul_is_allowed_only_in_the_values_named() {
        let p = Params::parse_allowing_nul(b"token=a%00b", &["token"]).unwrap();
        assert_eq!(p.get("token"), Some("a\0b"));
        for refused in [&b"token_type_hint=a%00"[..], b"tok%00en=a"] {
            assert_eq!(
                Params::parse_allowing_nul(refused, &["token"])
                    .unwrap_err()
                    .code,
                ErrorCode::InvalidRequest
            );
        }
    }

    #[test]
    fn longer_than_names_the_first_oversized_parameter() {
        let p = Params::parse(b"state=abcd&nonce=abcde&scope=ab").unwrap();
        assert_eq!(p.longer_than(5), None);
        assert_eq!(p.longer_than(4), Some("nonce"));
        assert_eq!(p.longer_than(3), Some("nonce"));
        assert_eq!(p.longer_than(1), Some("nonce"));
    }

    #[test]
    fn missing_required_parameter_names_it() {
        let e = Params::parse(b"")
            .unwrap()
            .require("grant_type")
            .unwrap_err();
        assert!(e.description.contains("grant_type"));
    }
}
