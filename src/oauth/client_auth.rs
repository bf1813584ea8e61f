//! Client authentication at the token endpoint (RFC 6749 §2.3.1, §3.2.1):
//! `client_secret_basic`, `client_secret_post`, `none` for public clients, and
//! `private_key_jwt` (RFC 7523 §2.2 and §3, OpenID Connect Core §9).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use super::metadata::{
    DEVICE_AUTHORIZATION_PATH, INTROSPECT_PATH, PAR_PATH, REVOKE_PATH, TOKEN_PATH,
};
use super::{Challenge, OAuthError, Params};
use crate::core::Core;
use crate::crypto::SecretHash;
use crate::domain::{UnixTime, is_valid_client_id};
use crate::store::{Client, StoreError};
use crate::tokens::client_keys::ASSERTION_ALGS;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT assertion.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far clocks may disagree, for `exp`, `nbf` and `iat`.
const ASSERTION_SKEW: i64 = 30;
/// The longest an assertion may live from now: a short-lived proof, not a credential.
const ASSERTION_MAX_LIFETIME: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    None,
    PrivateKeyJwt,
}

/// What the request presented, before anything was checked against the store.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    pub method: AuthMethod,
    pub client_id: String,
    pub secret: Option<String>,
    /// The `client_assertion` JWT of `private_key_jwt`.
    pub assertion: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("method", &self.method)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "(hidden)"))
            .field("assertion", &self.assertion.as_ref().map(|_| "(hidden)"))
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
    let assertion_type = params.get("client_assertion_type");
    let assertion = params.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        if authorization.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "the client authenticated with both a client assertion and a secret; use one method",
            ));
        }
        return assertion_presented(assertion_type, assertion, body_id);
    }
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
            assertion: None,
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
        assertion: None,
    })
}

/// RFC 7523 §2.2: `client_id` is optional, the assertion's `sub` names the client (checked
/// against its `iss` and signature later). Anything unusable is the uniform `invalid_client`.
fn assertion_presented(
    assertion_type: Option<&str>,
    assertion: Option<&str>,
    body_id: Option<&str>,
) -> Result<Presented, OAuthError> {
    let mut presented = Presented {
        method: AuthMethod::PrivateKeyJwt,
        client_id: body_id.unwrap_or_default().to_owned(),
        secret: None,
        assertion: None,
    };
    if assertion_type != Some(JWT_BEARER_ASSERTION) {
        return Err(failure(&presented, "unsupported client_assertion_type"));
    }
    let Some(assertion) = assertion else {
        return Err(failure(
            &presented,
            "client_assertion_type without client_assertion",
        ));
    };
    if body_id.is_none() {
        let Some(sub) = unverified_sub(assertion) else {
            return Err(failure(
                &presented,
                "client assertion without a readable sub",
            ));
        };
        presented.client_id = sub;
    }
    presented.assertion = Some(assertion.to_owned());
    Ok(presented)
}

/// The `sub` of a JWT, read before any check: only to find the client whose keys verify it.
fn unverified_sub(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
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
    core: &Core,
    presented: &Presented,
    now: UnixTime,
) -> Result<Arc<Client>, OAuthError> {
    let failed = |detail: &str| failure(presented, detail);
    let hasher = &core.server_keys.hasher;
    let client = if is_valid_client_id(&presented.client_id) {
        core.directory.client(&presented.client_id).await?
    } else {
        None
    };
    if let Some(assertion) = &presented.assertion {
        let Some(client) = client else {
            return Err(failed("unknown client"));
        };
        if !client.uses_private_key_jwt() {
            return Err(failed("client is not registered for private_key_jwt"));
        }
        return match verify_assertion(core, &client, assertion, now).await? {
            Ok(()) => Ok(client),
            Err(detail) => Err(failed(&detail)),
        };
    }
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
    if client.uses_private_key_jwt() {
        return Err(failed("private_key_jwt client sent no client assertion"));
    }
    match (client.secret_hash.is_some(), secret_matches) {
        (true, Some(true)) | (false, None) => Ok(client),
        (true, Some(_)) => Err(failed("wrong secret")),
        (true, None) => Err(failed("confidential client sent no secret")),
        (false, Some(_)) => Err(failed("public client sent a secret")),
    }
}

/// RFC 7523 §3: the assertion's signature with one of the client's keys (by `kid`, or its
/// only key) and an allowed algorithm; `iss` = `sub` = the client; `aud` Valet's issuer or one
/// of its endpoints; `exp` soon; `nbf`/`iat` not in the future; `jti` never seen before its
/// `exp` (one conditional insert, so across replicas). `Ok(Err(reason))` is a refusal.
async fn verify_assertion(
    core: &Core,
    client: &Client,
    assertion: &str,
    now: UnixTime,
) -> Result<Result<(), String>, StoreError> {
    let checked = match check_assertion(core, client, assertion, now).await {
        Ok(checked) => checked,
        Err(reason) => return Ok(Err(reason)),
    };
    let (jti, exp) = checked;
    // Kept until the assertion is refused as expired, which is `ASSERTION_SKEW` after its
    // `exp`: kept only until `exp`, it could be replayed for those seconds.
    let refused_from = UnixTime(exp.saturating_add(ASSERTION_SKEW));
    if !core
        .store
        .use_client_assertion(&client.client_id, &jti, refused_from, now)
        .await?
    {
        return Ok(Err("client assertion jti replayed".into()));
    }
    Ok(Ok(()))
}

/// Everything of [`verify_assertion`] but the replay check; the `jti` and `exp` to record.
async fn check_assertion(
    core: &Core,
    client: &Client,
    assertion: &str,
    now: UnixTime,
) -> Result<(String, i64), String> {
    let header = decode_header(assertion).map_err(|e| format!("malformed assertion: {e}"))?;
    if !ASSERTION_ALGS.contains(&header.alg) {
        return Err(format!("assertion alg {:?} is not allowed", header.alg));
    }
    let keys = core
        .client_keys
        .keys(client, header.kid.as_deref(), now)
        .await?;
    let key = match header.kid.as_deref() {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
    .ok_or("no key of the client matches the assertion's kid")?;
    if !key.algs.contains(&header.alg) {
        return Err(format!("the client's key is not for {:?}", header.alg));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = decode::<Value>(assertion, &key.key, &validation)
        .map_err(|e| format!("assertion signature: {e}"))?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    if text("iss") != Some(client.client_id.as_str()) || text("sub") != Some(&client.client_id) {
        return Err("assertion iss and sub must both be the client id".into());
    }
    let settings = &core.settings;
    let accepted = [
        settings.issuer_str().to_owned(),
        format!("{}/", settings.issuer_str()),
        settings.endpoint(TOKEN_PATH),
        settings.endpoint(INTROSPECT_PATH),
        settings.endpoint(REVOKE_PATH),
        settings.endpoint(PAR_PATH),
        settings.endpoint(DEVICE_AUTHORIZATION_PATH),
    ];
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err("assertion aud is neither the issuer nor an endpoint of Valet".into());
    }
    let exp = time("exp").ok_or("assertion without exp")?;
    if exp <= now.0 - ASSERTION_SKEW {
        return Err("assertion expired".into());
    }
    if exp > now.0 + ASSERTION_MAX_LIFETIME + ASSERTION_SKEW {
        return Err("assertion exp too far in the future".into());
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = claims.get(name) {
            match time(name) {
                Some(t) if t <= now.0 + ASSERTION_SKEW => {}
                _ => {
                    return Err(format!(
                        "assertion {name} {t} is in the future or malformed"
                    ));
                }
            }
        }
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 255)
        .ok_or("assertion without a usable jti")?;
    Ok((jti.to_owned(), exp))
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
    fn an_assertion_names_its_client_by_sub_or_client_id() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"svc","iss":"svc"}"#);
        let jwt = format!("e30.{payload}.sig");
        let body = format!(
            "client_assertion_type={}&client_assertion={jwt}",
            JWT_BEARER_ASSERTION.replace(':', "%3A")
        );
        let p = presented(None, &Params::parse(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            (p.method, p.client_id.as_str(), p.assertion.as_deref()),
            (AuthMethod::PrivateKeyJwt, "svc", Some(jwt.as_str()))
        );
        let with_id = format!("{body}&client_id=other");
        let p = presented(None, &Params::parse(with_id.as_bytes()).unwrap()).unwrap();
        assert_eq!(p.client_id, "other", "checked against iss and sub later");
        // With a secret too: two methods at once.
        let both = format!("{body}&client_secret=x");
        let e = presented(None, &Params::parse(both.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = presented(
            Some(&basic("a", "b")),
            &Params::parse(body.as_bytes()).unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        // A wrong type, or no assertion: the uniform failure.
        for bad in [
            "client_assertion_type=urn%3Aother&client_assertion=x.y.z".to_owned(),
            format!(
                "client_id=svc&client_assertion_type={}",
                JWT_BEARER_ASSERTION
            ),
            "client_assertion_type=x".to_owned(),
        ] {
            let e = presented(None, &Params::parse(bad.as_bytes()).unwrap()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{bad}");
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
