//! Client authentication at the token endpoint (RFC 6749 §2.3.1, §3.2.1):
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Challenge, OAuthError, Params};
use crate::crypto::{SecretHash, SecretHasher};
use crate::domain::is_valid_client_id;
use crate::store::Client;
use crate::store::cache::Directory;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    None,
}

/// What the request presented, before anything was checked against the store.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    pub method: AuthMethod,
    pub client_id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("method", &self.method)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "(hidden)"))
            .finish()
    }
}

impl Presented {
    fn challenge(&self) -> Option<Challenge> {
        (self.method == AuthMethod::Basic).then_some(Challenge::Basic)
    }
}

/// Read the credentials from the `Authorization` header and the body. Using two methods at
/// once is `invalid_request` (RFC 6749 §2.3).
pub fn presented(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let Some(header) = authorization {
        let (id, secret) = decode_basic(header)?;
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "the client authenticated with both HTTP Basic and client_secret in the body; use one method",
            ));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the one in the Authorization header",
            ));
        }
        return Ok(Presented {
            method: AuthMethod::Basic,
            client_id: id,
            secret: Some(secret),
        });
    }
    let Some(client_id) = body_id else {
        return Err(OAuthError::invalid_client(
            "client authentication is required: send HTTP Basic credentials, or client_id (and client_secret) in the body",
        ));
    };
    Ok(Presented {
        method: if body_secret.is_some() {
            AuthMethod::Post
        } else {
            AuthMethod::None
        },
        client_id: client_id.to_owned(),
        secret: body_secret.map(str::to_owned),
    })
}

/// RFC 6749 §2.3.1: the id and secret are form-urlencoded before being joined with `:` and
/// base64-encoded, so both are percent-decoded (with `+` as a space) after splitting.
fn decode_basic(header: &str) -> Result<(String, String), OAuthError> {
    let malformed = || {
        OAuthError::invalid_client("malformed HTTP Basic credentials")
            .with_challenge(Some(Challenge::Basic))
    };
    let (scheme, rest) = header.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "unsupported Authorization scheme at the token endpoint; use Basic",
        ));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok((id, secret))
}

fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Check presented credentials against the (cached) client. Every failure is the same
/// answer (status, error, description, challenge), whether the id is unknown, public or
/// confidential, so the endpoint does not reveal which client ids exist or what kind they
/// are (SPEC §7); the reason goes to the logs only. A presented secret is always compared
/// against a hash, a dummy one when the client has none, so that the timing is alike too.
pub async fn authenticate(
    directory: &Directory,
    hasher: &SecretHasher,
    presented: &Presented,
) -> Result<Arc<Client>, OAuthError> {
    let failed = |detail: &str| failure(presented, detail);
    let client = if is_valid_client_id(&presented.client_id) {
        directory.client(&presented.client_id).await?
    } else {
        None
    };
    let stored = client.as_ref().and_then(|c| c.secret_hash.as_ref());
    // The comparison runs whatever the client: against its hash, or a dummy that no secret
    // matches.
    let secret_matches = presented.secret.as_deref().map(|secret| {
        let dummy = SecretHash(vec![0; 32]);
        let matches = hasher.verify(secret, stored.unwrap_or(&dummy));
        matches && stored.is_some()
    });
    let Some(client) = client else {
        return Err(if is_valid_client_id(&presented.client_id) {
            failed("unknown client")
        } else {
            failed("malformed client id")
        });
    };
    match (client.secret_hash.is_some(), secret_matches) {
        (true, Some(true)) | (false, None) => Ok(client),
        (true, Some(_)) => Err(failed("wrong secret")),
        (true, None) => Err(failed("confidential client sent no secret")),
        (false, Some(_)) => Err(failed("public client sent a secret")),
    }
}

/// The one answer to a failed client authentication; `detail` is for the logs only. An
/// endpoint that refuses an authenticated client for what it is (a public client at
/// introspection) answers with this too, so that it reveals nothing either.
pub fn failure(presented: &Presented, detail: &str) -> OAuthError {
    let mut e = OAuthError::invalid_client("client authentication failed")
        .with_challenge(presented.challenge());
    e.detail = Some(format!("client {:?}: {detail}", presented.client_id));
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // `billing.svc:eu+1` form-encodes to `billing.svc%3Aeu%2B1`.
        let header = basic("billing.svc%3Aeu%2B1", "s%2Fe+c");
        let p = presented(Some(&header), &Params::default()).unwrap();
        assert_eq!(p.client_id, "billing.svc:eu+1");
        assert_eq!(p.secret.as_deref(), Some("s/e c"));
        assert_eq!(p.method, AuthMethod::Basic);
    }

    #[test]
    fn two_methods_at_once_is_invalid_request() {
        let params = Params::parse(b"client_secret=x").unwrap();
        let e = presented(Some(&basic("a", "b")), &params).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_challenge() {
        for header in [
            "Basic !!!",
            "Basic",
            "Basic bm9jb2xvbg==",
            "Basic OnNlY3JldA==",
        ] {
            let e = presented(Some(header), &Params::default()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{header}");
            assert_eq!(e.challenge, Some(Challenge::Basic), "{header}");
        }
    }

    #[test]
    fn post_and_none() {
        let p = presented(
            None,
            &Params::parse(b"client_id=a&client_secret=b").unwrap(),
        )
        .unwrap();
        assert_eq!(
            (p.method, p.secret.as_deref()),
            (AuthMethod::Post, Some("b"))
        );
        let p = presented(None, &Params::parse(b"client_id=a").unwrap()).unwrap();
        assert_eq!((p.method, p.secret), (AuthMethod::None, None));
        let e = presented(None, &Params::default()).unwrap_err();
        assert_eq!((e.code, e.challenge), (ErrorCode::InvalidClient, None));
    }
}
