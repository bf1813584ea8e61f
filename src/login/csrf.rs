//! CSRF protection for the login, consent and logout forms: a double-submit token.
//!
//! The browser holds a random `valet_csrf` cookie (`__Host-valet_csrf` on an https issuer);
//! each form carries HMAC(key, purpose, binding, cookie) in a hidden field. A page on another site can make the
//! browser post a form, but cannot read the cookie, so it cannot compute the field. The key
//! is derived from `secret`, so every replica checks tokens that any replica issued, with no
//! state in the store.

use crate::crypto::{SecretHash, SecretHasher};

pub const CSRF_COOKIE: &str = "valet_csrf";

/// The CSRF cookie's name: `__Host-` prefixed on an https issuer, as
/// [`session_cookie_name`](crate::login::session::session_cookie_name) explains.
pub fn csrf_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-valet_csrf"
    } else {
        CSRF_COOKIE
    }
}

/// Which form a token is for: a token for one form is useless for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormPurpose {
    Login,
    Consent,
    Logout,
    Device,
}

impl FormPurpose {
    fn as_str(self) -> &'static str {
        match self {
            FormPurpose::Login => "login",
            FormPurpose::Consent => "consent",
            FormPurpose::Logout => "logout",
            FormPurpose::Device => "device",
        }
    }
}

#[derive(Clone)]
pub struct CsrfTokens {
    key: SecretHasher,
}

impl CsrfTokens {
    pub fn new(key: SecretHasher) -> Self {
        Self { key }
    }

    /// The hidden-field value for `purpose`, bound to `binding` (the pending-request id, or
    /// empty) and to the browser's cookie.
    pub fn token(&self, purpose: FormPurpose, binding: &str, cookie: &str) -> String {
        self.mac(purpose, binding, cookie).to_text()
    }

    /// Constant-time check of a posted token.
    pub fn verify(&self, purpose: FormPurpose, binding: &str, cookie: &str, posted: &str) -> bool {
        SecretHash::from_text(posted)
            .is_some_and(|posted| self.mac(purpose, binding, cookie).matches(&posted))
    }

    fn mac(&self, purpose: FormPurpose, binding: &str, cookie: &str) -> SecretHash {
        // Lengths first, so that no two (binding, cookie) pairs give the same input.
        self.key.hash(&format!(
            "csrf/{}/{}:{binding}/{}:{cookie}",
            purpose.as_str(),
            binding.len(),
            cookie.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_purpose_binding_and_cookie() {
        let csrf = CsrfTokens::new(SecretHasher::new(&[3u8; 32]));
        let token = csrf.token(FormPurpose::Login, "req1", "cookie1");
        assert!(csrf.verify(FormPurpose::Login, "req1", "cookie1", &token));
        assert!(!csrf.verify(FormPurpose::Consent, "req1", "cookie1", &token));
        assert!(!csrf.verify(FormPurpose::Login, "req2", "cookie1", &token));
        assert!(!csrf.verify(FormPurpose::Login, "req1", "cookie2", &token));
        assert!(!csrf.verify(FormPurpose::Login, "req1", "cookie1", ""));
        assert!(!csrf.verify(FormPurpose::Login, "req1", "cookie1", "not base64 !"));
        let other_key = CsrfTokens::new(SecretHasher::new(&[4u8; 32]));
        assert!(!other_key.verify(FormPurpose::Login, "req1", "cookie1", &token));
    }
}
