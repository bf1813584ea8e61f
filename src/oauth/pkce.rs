//! Proof Key for Code Exchange (RFC 7636 §4.1–§4.6).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::OAuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
    /// Refused unless the configuration allows it (RFC 9700 §2.1.1).
    Plain,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::S256 => "S256",
            Method::Plain => "plain",
        }
    }

    /// `code_challenge_method`; RFC 7636 §4.3: absent means `plain`.
    pub fn parse(text: Option<&str>) -> Result<Self, OAuthError> {
        match text {
            Some("S256") => Ok(Method::S256),
            Some("plain") | None => Ok(Method::Plain),
            Some(_) => Err(OAuthError::invalid_request(
                "code_challenge_method must be S256 (or plain where allowed)",
            )),
        }
    }
}

/// `code-verifier = 43*128unreserved` (§4.1); a `code_challenge` has the same form (§4.2).
fn is_pkce_string(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub fn check_challenge(challenge: &str, method: Method) -> Result<(), OAuthError> {
    // An S256 challenge is the base64url form of a SHA-256 digest: exactly 43 characters.
    let well_formed = match method {
        Method::S256 => challenge.len() == 43 && is_pkce_string(challenge),
        Method::Plain => is_pkce_string(challenge),
    };
    if well_formed {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "code_challenge is malformed (RFC 7636 section 4.2: 43 to 128 characters of A-Z a-z 0-9 - . _ ~)",
        ))
    }
}

/// §4.6: does `verifier` answer `challenge`? Compared in constant time.
pub fn verify(verifier: &str, challenge: &str, method: Method) -> bool {
    if !is_pkce_string(verifier) {
        return false;
    }
    let derived = match method {
        Method::S256 => {
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
        }
        Method::Plain => verifier.to_owned(),
    };
    derived.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn appendix_b_example() {
        assert!(verify(VERIFIER, CHALLENGE, Method::S256));
        assert!(!verify(
            &VERIFIER.replace('d', "e"),
            CHALLENGE,
            Method::S256
        ));
        assert!(!verify(VERIFIER, CHALLENGE, Method::Plain));
        assert!(verify(VERIFIER, VERIFIER, Method::Plain));
    }

    #[test]
    fn malformed_verifiers_and_challenges_fail() {
        assert!(!verify("short", CHALLENGE, Method::S256));
        assert!(!verify(&"a".repeat(129), CHALLENGE, Method::S256));
        assert!(!verify(&format!("{VERIFIER}!"), CHALLENGE, Method::S256));
        assert!(check_challenge(CHALLENGE, Method::S256).is_ok());
        assert!(
            check_challenge(&"a".repeat(44), Method::S256).is_err(),
            "not a SHA-256 digest"
        );
        assert!(check_challenge(&"a".repeat(44), Method::Plain).is_ok());
        assert!(
            check_challenge(
                "has space and is long enough to pass the length check",
                Method::Plain
            )
            .is_err()
        );
    }

    #[test]
    fn methods() {
        assert_eq!(Method::parse(Some("S256")).unwrap(), Method::S256);
        assert_eq!(Method::parse(None).unwrap(), Method::Plain);
        assert!(Method::parse(Some("s256")).is_err());
    }
}
