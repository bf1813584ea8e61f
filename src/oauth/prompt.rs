//! What OpenID Connect lets a client ask of the sign-in at `/authorize` (Core §3.1.2.1):
//! `prompt` and `max_age`. They are parsed here and kept with the pending request;
//! `AuthorizationRequest::accepts_sign_in` and the login and consent steps apply them.

use serde::{Deserialize, Serialize};

use crate::domain::printable;
use crate::oauth::OAuthError;

/// OpenID Connect's `prompt` (Core §3.1.2.1): what the person must, or must not, be shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Show nothing: answer `login_required` or `consent_required` instead of a page.
    pub none: bool,
    /// Sign in again even with a session.
    pub login: bool,
    /// Ask for consent even when an earlier one covers the request.
    pub consent: bool,
}

impl Prompt {
    pub fn parse(text: Option<&str>) -> Result<Self, OAuthError> {
        let mut prompt = Prompt::default();
        for value in text
            .unwrap_or_default()
            .split(' ')
            .filter(|v| !v.is_empty())
        {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // A session holds one account, so there is nothing to select.
                "select_account" => {}
                other => {
                    return Err(OAuthError::invalid_request(format!(
                        "prompt value `{}` is not supported (none, login, consent, select_account)",
                        printable(other)
                    )));
                }
            }
        }
        if prompt.none && text.is_some_and(|t| t.trim() != "none") {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        Ok(prompt)
    }
}

pub fn parse_max_age(text: Option<&str>) -> Result<Option<i64>, OAuthError> {
    text.map(|t| {
        t.parse::<u32>().map(i64::from).map_err(|_| {
            OAuthError::invalid_request("max_age must be a number of seconds (0 or more)")
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_values_parse_and_none_stands_alone() {
        let parsed = |text| Prompt::parse(Some(text));
        assert_eq!(parsed("").unwrap(), Prompt::default());
        assert_eq!(
            parsed("login consent").unwrap(),
            Prompt {
                login: true,
                consent: true,
                none: false
            }
        );
        assert!(parsed("none").unwrap().none);
        assert_eq!(parsed("select_account").unwrap(), Prompt::default());
        assert!(parsed("none login").is_err());
        assert!(parsed("bogus").is_err());
        assert_eq!(Prompt::parse(None).unwrap(), Prompt::default());
    }

    #[test]
    fn max_age_is_a_non_negative_number_of_seconds() {
        assert_eq!(parse_max_age(Some("0")).unwrap(), Some(0));
        assert_eq!(parse_max_age(Some("3600")).unwrap(), Some(3600));
        assert_eq!(parse_max_age(None).unwrap(), None);
        for bad in ["-1", "1.5", "soon", ""] {
            assert!(parse_max_age(Some(bad)).is_err(), "{bad}");
        }
    }
}
