//! What `/authorize` is asked for: the response types (RFC 6749 §3.1.1, OpenID Connect Core
//! §3) and the validated request kept while the person signs in and consents.

use serde::{Deserialize, Serialize};

use crate::domain::{GrantType, ScopeSet, UnixTime};
use crate::oauth::prompt::Prompt;
use crate::oauth::response_mode::ResponseMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// RFC 6749 §4.1.
    Code,
    /// RFC 6749 §4.2 (implicit).
    Token,
    /// OpenID Connect Core §3.2 (implicit): an ID token only.
    IdToken,
    /// OpenID Connect Core §3.2 (implicit): an ID token and an access token.
    IdTokenToken,
}

impl ResponseType {
    pub const ALL: [ResponseType; 4] = [
        ResponseType::Code,
        ResponseType::Token,
        ResponseType::IdToken,
        ResponseType::IdTokenToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::Token => "token",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
        }
    }

    /// The space-delimited values in any order (RFC 6749 §3.1.1): `token id_token` too.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut words: Vec<&str> = text.split(' ').collect();
        words.sort_unstable();
        Self::ALL.into_iter().find(|t| {
            let mut own: Vec<&str> = t.as_str().split(' ').collect();
            own.sort_unstable();
            own == words
        })
    }

    pub fn grant(self) -> GrantType {
        match self {
            ResponseType::Code => GrantType::AuthorizationCode,
            ResponseType::Token | ResponseType::IdToken | ResponseType::IdTokenToken => {
                GrantType::Implicit
            }
        }
    }

    pub fn issues_access_token(self) -> bool {
        matches!(self, ResponseType::Token | ResponseType::IdTokenToken)
    }

    pub fn issues_id_token(self) -> bool {
        matches!(self, ResponseType::IdToken | ResponseType::IdTokenToken)
    }

    /// Whether tokens travel in the redirect itself (the implicit types).
    pub(super) fn in_front_channel(self) -> bool {
        match self {
            ResponseType::Code => false,
            ResponseType::Token | ResponseType::IdToken | ResponseType::IdTokenToken => true,
        }
    }

    /// RFC 6749 §4.1.2 and §4.2.2: a code in the query; tokens only in the fragment (or a
    /// form_post), never in a query.
    pub(super) fn default_mode(self) -> ResponseMode {
        if self.in_front_channel() {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        }
    }
}

/// A validated request, as kept in the store while the person signs in and consents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// The matched redirect URI.
    pub redirect_uri: String,
    /// Whether the request named it: then the token request must repeat it (§4.1.3).
    pub redirect_uri_sent: bool,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    /// What the policy allows before the person's consent (SPEC §6).
    pub scope: ScopeSet,
    pub audience: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    // Defaults for requests kept by an older version while a deployment rolls.
    #[serde(default)]
    pub prompt: Prompt,
    /// OpenID Connect `max_age`: the sign-in may be at most this many seconds old.
    #[serde(default)]
    pub max_age: Option<i64>,
    /// OpenID Connect `login_hint`: the username to fill in on the login page.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// When the request arrived: `prompt=login` wants a sign-in after it.
    #[serde(default)]
    pub requested_at: i64,
}

impl AuthorizationRequest {
    /// Whether a sign-in at `auth_time` is recent enough for this request (`prompt=login`,
    /// `max_age`); if not, the person signs in again.
    /// A sign-in made for this request (at or after it arrived) satisfies `max_age` however
    /// long the person then takes to consent: it is as fresh as the request could ask.
    pub fn accepts_sign_in(&self, auth_time: UnixTime, now: UnixTime) -> bool {
        let for_this_request = self.requested_at > 0 && auth_time.0 >= self.requested_at;
        let young_enough = self
            .max_age
            .is_none_or(|max| for_this_request || now.0 - auth_time.0 <= max);
        let after_request = !self.prompt.login || auth_time.0 >= self.requested_at;
        young_enough && after_request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixTime;
    use crate::oauth::prompt::Prompt;
    use crate::oauth::response_mode::ResponseMode;

    #[test]
    fn response_types_are_sets_of_values() {
        assert_eq!(ResponseType::parse("code"), Some(ResponseType::Code));
        assert_eq!(
            ResponseType::parse("token id_token"),
            Some(ResponseType::IdTokenToken)
        );
        assert_eq!(
            ResponseType::parse("id_token token"),
            Some(ResponseType::IdTokenToken)
        );
        assert_eq!(ResponseType::parse("id_token"), Some(ResponseType::IdToken));
        for unsupported in ["code id_token", "code token", "token token", "", "none"] {
            assert_eq!(ResponseType::parse(unsupported), None, "{unsupported}");
        }
    }

    #[test]
    fn a_sign_in_must_be_young_enough_and_after_a_login_prompt() {
        let request = |prompt: Prompt, max_age| AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_sent: true,
            response_type: ResponseType::Code,
            response_mode: ResponseMode::Query,
            state: None,
            scope: ScopeSet::default(),
            audience: String::new(),
            code_challenge: None,
            code_challenge_method: None,
            nonce: None,
            prompt,
            max_age,
            login_hint: None,
            requested_at: 1_000,
        };
        let now = UnixTime(1_100);
        let plain = request(Prompt::default(), None);
        assert!(plain.accepts_sign_in(UnixTime(0), now));
        let login = request(
            Prompt {
                login: true,
                ..Prompt::default()
            },
            None,
        );
        assert!(!login.accepts_sign_in(UnixTime(999), now));
        assert!(login.accepts_sign_in(UnixTime(1_050), now));
        let max_age = request(Prompt::default(), Some(60));
        // A session from before the request: at most 60 s old now.
        assert!(max_age.accepts_sign_in(UnixTime(990), UnixTime(1_050)));
        assert!(!max_age.accepts_sign_in(UnixTime(989), UnixTime(1_050)));
        assert!(!max_age.accepts_sign_in(UnixTime(999), now));
        // A sign-in for this request satisfies max_age however long consent then takes.
        assert!(max_age.accepts_sign_in(UnixTime(1_000), now));
        assert!(max_age.accepts_sign_in(UnixTime(1_001), UnixTime(5_000)));
        // A request kept by an older version has no arrival time: only age counts.
        let mut legacy = request(Prompt::default(), Some(60));
        legacy.requested_at = 0;
        assert!(!legacy.accepts_sign_in(UnixTime(1_039), now));
    }

    #[test]
    fn requests_kept_by_an_older_version_still_load() {
        let old = r#"{"client_id":"c","redirect_uri":"https://app.example/cb","redirect_uri_sent":true,
            "response_type":"code","response_mode":"query","state":null,"scope":"openid","audience":"",
            "code_challenge":null,"code_challenge_method":null,"nonce":null}"#;
        let request: AuthorizationRequest = serde_json::from_str(old).unwrap();
        assert_eq!(request.prompt, Prompt::default());
        assert_eq!(request.max_age, None);
    }
}
