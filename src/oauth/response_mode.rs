//! How an authorization response reaches the client (RFC 6749 §4.1.2, §4.2.2): in the query,
//! in the fragment, or as an auto-submitted form (OAuth 2.0 Form Post Response Mode), always
//! with `iss` (RFC 9207) and the client's `state`.

use serde::{Deserialize, Serialize};
use url::Url;

use super::OAuthError;
use super::redirect::MatchedRedirect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    pub const ALL: [ResponseMode; 3] = [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::FormPost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Query => "query",
            ResponseMode::Fragment => "fragment",
            ResponseMode::FormPost => "form_post",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Where and how a response goes: only a matched redirect URI can be a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    pub redirect_uri: MatchedRedirect,
    pub mode: ResponseMode,
    pub state: Option<String>,
}

/// A success or error response for the client, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    pub target: RedirectTarget,
    pub params: Vec<(&'static str, String)>,
}

impl AuthorizationResponse {
    /// RFC 6749 §4.1.2.1 / §4.2.2.1.
    pub fn error(target: RedirectTarget, error: &OAuthError) -> Self {
        Self {
            target,
            params: vec![
                ("error", error.code.as_str().to_owned()),
                ("error_description", error.description.to_string()),
            ],
        }
    }
}

/// The encoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Redirect(String),
    FormPost {
        action: String,
        fields: Vec<(String, String)>,
    },
}

/// Add `state` and `iss` and encode in the target's mode. A query already in the registered
/// URI is kept (RFC 6749 §3.1.2).
pub fn deliver(response: AuthorizationResponse, issuer: &str) -> Delivery {
    let AuthorizationResponse { target, mut params } = response;
    if let Some(state) = target.state {
        params.push(("state", state));
    }
    params.push(("iss", issuer.to_owned()));
    let uri = target.redirect_uri.as_str();
    match target.mode {
        ResponseMode::FormPost => Delivery::FormPost {
            action: uri.to_owned(),
            fields: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        },
        ResponseMode::Query => Delivery::Redirect(with_query(uri, &params)),
        ResponseMode::Fragment => {
            let encoded = encode(&params);
            Delivery::Redirect(format!("{uri}#{encoded}"))
        }
    }
}

fn encode(params: &[(&'static str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        out.append_pair(name, value);
    }
    out.finish()
}

fn with_query(uri: &str, params: &[(&'static str, String)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        // Registered URIs are absolute URIs (checked at registration); keep going regardless.
        Err(_) => {
            let separator = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{separator}{}", encode(params))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::redirect::matched;

    fn target(uri: &str, mode: ResponseMode) -> RedirectTarget {
        RedirectTarget {
            redirect_uri: matched(&[uri.to_owned()], None).unwrap(),
            mode,
            state: Some("a b&c".into()),
        }
    }

    fn response(uri: &str, mode: ResponseMode) -> AuthorizationResponse {
        AuthorizationResponse {
            target: target(uri, mode),
            params: vec![("code", "xyz".into())],
        }
    }

    #[test]
    fn query_mode_keeps_the_registered_query_and_adds_state_and_iss() {
        let delivery = deliver(
            response("https://app.example/cb?tenant=7", ResponseMode::Query),
            "https://id.example",
        );
        assert_eq!(
            delivery,
            Delivery::Redirect(
                "https://app.example/cb?tenant=7&code=xyz&state=a+b%26c&iss=https%3A%2F%2Fid.example".into()
            )
        );
    }

    #[test]
    fn fragment_mode_puts_everything_after_the_hash() {
        let delivery = deliver(
            response("https://app.example/cb", ResponseMode::Fragment),
            "https://id.example",
        );
        assert_eq!(
            delivery,
            Delivery::Redirect(
                "https://app.example/cb#code=xyz&state=a+b%26c&iss=https%3A%2F%2Fid.example".into()
            )
        );
    }

    #[test]
    fn form_post_mode_lists_fields() {
        let delivery = deliver(
            response("com.example.app:/cb", ResponseMode::FormPost),
            "https://id.example",
        );
        let Delivery::FormPost { action, fields } = delivery else {
            panic!("not a form post")
        };
        assert_eq!(action, "com.example.app:/cb");
        assert_eq!(fields[0], ("code".to_owned(), "xyz".to_owned()));
        assert_eq!(
            fields[2],
            ("iss".to_owned(), "https://id.example".to_owned())
        );
    }

    #[test]
    fn errors_carry_code_and_description() {
        let error = OAuthError::invalid_scope("scope `x` is not allowed");
        let r = AuthorizationResponse::error(
            target("https://a.example/cb", ResponseMode::Query),
            &error,
        );
        assert_eq!(r.params[0], ("error", "invalid_scope".to_owned()));
        assert_eq!(r.params[1].1, "scope `x` is not allowed");
    }
}
