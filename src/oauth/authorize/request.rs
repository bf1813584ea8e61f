//! What `/authorize` is asked for: the response types (RFC 6749 §3.1.1, OpenID Connect Core
//! §3) and the validated request kept while the person signs in and consents.

use serde::{Deserialize, Serialize};

use crate::domain::{GrantType, RequestedClaims, ScopeSet, UnixTime};
use crate::oauth::prompt::Prompt;
use crate::oauth::response_mode::ResponseMode;
use crate::store::Session;
use crate::tokens::id_token::scope_of_claim;

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
    /// OpenID Connect Core §3.3 (hybrid): a code, and an ID token in the redirect.
    CodeIdToken,
    /// Core §3.3: a code, and an access token in the redirect.
    CodeToken,
    /// Core §3.3: a code, an ID token and an access token.
    CodeIdTokenToken,
}

impl ResponseType {
    pub const ALL: [ResponseType; 7] = [
        ResponseType::Code,
        ResponseType::Token,
        ResponseType::IdToken,
        ResponseType::IdTokenToken,
        ResponseType::CodeIdToken,
        ResponseType::CodeToken,
        ResponseType::CodeIdTokenToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::Token => "token",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
            ResponseType::CodeIdToken => "code id_token",
            ResponseType::CodeToken => "code token",
            ResponseType::CodeIdTokenToken => "code id_token token",
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

    /// The grant a request of this type is logged under: the code's where there is one.
    pub fn grant(self) -> GrantType {
        if self.issues_code() {
            GrantType::AuthorizationCode
        } else {
            GrantType::Implicit
        }
    }

    /// The grant types a client needs for it (SPEC §9): the hybrid types need both.
    pub fn needs_grants(self) -> &'static [GrantType] {
        match (self.issues_code(), self.in_front_channel()) {
            (true, false) => &[GrantType::AuthorizationCode],
            (false, _) => &[GrantType::Implicit],
            (true, true) => &[GrantType::AuthorizationCode, GrantType::Implicit],
        }
    }

    pub fn issues_code(self) -> bool {
        matches!(
            self,
            ResponseType::Code
                | ResponseType::CodeIdToken
                | ResponseType::CodeToken
                | ResponseType::CodeIdTokenToken
        )
    }

    /// An access token in the redirect.
    pub fn issues_access_token(self) -> bool {
        matches!(
            self,
            ResponseType::Token
                | ResponseType::IdTokenToken
                | ResponseType::CodeToken
                | ResponseType::CodeIdTokenToken
        )
    }

    /// An ID token in the redirect.
    pub fn issues_id_token(self) -> bool {
        matches!(
            self,
            ResponseType::IdToken
                | ResponseType::IdTokenToken
                | ResponseType::CodeIdToken
                | ResponseType::CodeIdTokenToken
        )
    }

    /// Whether tokens travel in the redirect itself (the implicit and hybrid types).
    pub(super) fn in_front_channel(self) -> bool {
        self.issues_access_token() || self.issues_id_token()
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
    /// The session (its stored hash, as text) signed in on the login page for this very
    /// request, if one was: it satisfies `prompt=login` and `max_age` however quickly it
    /// followed an earlier sign-in and however long consent then takes.
    #[serde(default)]
    pub signed_in_session: Option<String>,
    /// The `claims` parameter (Core §5.5).
    #[serde(default)]
    pub claims: RequestedClaims,
    /// The `sub` of a verified `id_token_hint` (Core §3.1.2.1): only that user's session
    /// answers the request without a login page.
    #[serde(default)]
    pub hinted_subject: Option<String>,
    /// A device sign-in (RFC 8628) rather than a redirect: the stored hash of its user code.
    /// Approving or denying answers the device, and the browser gets a page.
    #[serde(default)]
    pub device: Option<String>,
}

impl AuthorizationRequest {
    /// What the person is asked to allow: the scope, and the scopes of the claims the
    /// `claims` parameter names (so a claim asked for by name never skips consent).
    pub fn consented_scope(&self) -> ScopeSet {
        let by_claim = self
            .claims
            .userinfo
            .iter()
            .chain(&self.claims.id_token)
            .filter_map(|claim| scope_of_claim(claim));
        ScopeSet::from_tokens(self.scope.iter().chain(by_claim).map(str::to_owned))
    }

    /// Whether `session` is a recent enough sign-in for this request (`prompt=login`,
    /// `max_age`); if not, the person signs in again. The sign-in made for this request
    /// always is: it is as fresh as the request could ask. `max_age=0` asks for exactly that,
    /// as `prompt=login` does (OpenID Connect Core §3.1.2.1).
    pub fn accepts_sign_in(&self, session: &Session, now: UnixTime) -> bool {
        let for_this_request = self
            .signed_in_session
            .as_deref()
            .is_some_and(|marked| marked == session.id_hash.to_text());
        if for_this_request {
            return true;
        }
        if self
            .hinted_subject
            .as_ref()
            .is_some_and(|sub| *sub != session.user_id)
        {
            // Signed in as someone else than the app expects: `login_required` under
            // `prompt=none`, else the login page.
            return false;
        }
        let young_enough = self
            .max_age
            .is_none_or(|max| max > 0 && now.0 - session.auth_time.0 <= max);
        young_enough && !self.prompt.login
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretHash;
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
        assert_eq!(
            ResponseType::parse("id_token code"),
            Some(ResponseType::CodeIdToken)
        );
        assert_eq!(
            ResponseType::parse("token id_token code"),
            Some(ResponseType::CodeIdTokenToken)
        );
        for unsupported in ["code code", "token token", "", "none", "code  token"] {
            assert_eq!(ResponseType::parse(unsupported), None, "{unsupported}");
        }
    }

    #[test]
    fn a_sign_in_must_be_young_enough_or_made_for_the_request() {
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
            signed_in_session: None,
            claims: RequestedClaims::default(),
            hinted_subject: None,
            device: None,
        };
        let session = |id: u8, auth_time| Session {
            id_hash: SecretHash(vec![id; 32]),
            user_id: "u".into(),
            auth_time: UnixTime(auth_time),
            created_at: UnixTime(auth_time),
            expires_at: UnixTime(auth_time + 3_600),
        };
        let now = UnixTime(1_100);
        let plain = request(Prompt::default(), None);
        assert!(plain.accepts_sign_in(&session(1, 0), now));

        let mut login = request(
            Prompt {
                login: true,
                ..Prompt::default()
            },
            None,
        );
        // Even a sign-in in this very second was not made for the request.
        assert!(!login.accepts_sign_in(&session(1, 1_100), now));
        login.signed_in_session = Some(session(2, 1_100).id_hash.to_text());
        assert!(!login.accepts_sign_in(&session(1, 1_100), now));
        assert!(login.accepts_sign_in(&session(2, 1_100), now));

        let max_age = request(Prompt::default(), Some(60));
        assert!(max_age.accepts_sign_in(&session(1, 1_040), now));
        assert!(!max_age.accepts_sign_in(&session(1, 1_039), now));
        // The sign-in for this request satisfies max_age however long consent then takes.
        let mut slow = request(Prompt::default(), Some(1));
        slow.signed_in_session = Some(session(3, 1_000).id_hash.to_text());
        assert!(slow.accepts_sign_in(&session(3, 1_000), UnixTime(5_000)));

        let mut hinted = request(Prompt::default(), None);
        hinted.hinted_subject = Some("someone else".into());
        assert!(
            !hinted.accepts_sign_in(&session(1, 1_000), now),
            "another user's session"
        );
        hinted.hinted_subject = Some("u".into());
        assert!(hinted.accepts_sign_in(&session(1, 1_000), now));

        let mut zero = request(Prompt::default(), Some(0));
        assert!(
            !zero.accepts_sign_in(&session(1, 1_100), now),
            "max_age=0 is prompt=login"
        );
        zero.signed_in_session = Some(session(4, 1_100).id_hash.to_text());
        assert!(zero.accepts_sign_in(&session(4, 1_100), UnixTime(1_101)));
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
