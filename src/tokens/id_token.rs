//! ID tokens (OpenID Connect Core §2): who signed in, when, and for which client, as a JWT
//! signed with the same key as access tokens; and the user claims (§5.1) they and `/userinfo`
//! release by scope (§5.4). Pure: the grants decide when one is issued.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::crypto::SecretHash;
use crate::domain::{ScopeSet, SigningAlg, UnixTime};
use crate::store::{Address, User};
use crate::tokens::keys::{KeyError, KeySet, SigningKey};
use crate::tokens::signer::sign_jwt;

/// The claims an ID token may carry beyond the user's (§2, §3.1.3.6).
pub const ID_TOKEN_CLAIMS: [&str; 9] = [
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "sid",
];

/// The `typ` of ID tokens: plain `JWT`, as relying parties expect (Core §2 sets none).
const ID_TOKEN_TYP: &str = "JWT";

#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    /// The client the token is for: exactly one audience, so no `azp` (§2).
    aud: &'a str,
    exp: i64,
    iat: i64,
    /// When the user last signed in (with a password), not when this token was made.
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    c_hash: Option<String>,
    /// The browser session (Front- and Back-Channel Logout 1.0): none for the password grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    /// `sub` and the claims the granted scopes release, as `/userinfo` gives them.
    #[serde(flatten)]
    user: UserInfo,
}

/// The claims Valet can state about a user; `None` ones are left out of the response, never
/// `null` (Core §5.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The same `sub` as the access token's (§5.3.2 requires they match).
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// When the user's record last changed, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// The claims `supported` lists in the discovery document: `sub` and those of §5.4's scopes
/// that Valet stores.
pub const CLAIMS_SUPPORTED: [&str; 12] = [
    "sub",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "address",
    "phone_number",
];

/// The scope whose consent covers a claim (Core §5.4), for a claim asked for by name with the
/// `claims` parameter: what it names must be consented to as if its scope had been asked for.
pub fn scope_of_claim(claim: &str) -> Option<&'static str> {
    match claim {
        "sub" => None,
        "email" | "email_verified" => Some("email"),
        "address" => Some("address"),
        "phone_number" | "phone_number_verified" => Some("phone"),
        _ => Some("profile"),
    }
}

impl UserInfo {
    /// The claims of §5.4's scopes: `profile` the name claims, `picture`, `locale` and
    /// `updated_at`; `email` the address and whether it was verified; `address` the postal
    /// address; `phone` the number. `sub` is always there; a claim the user has no value
    /// for is left out. (`email_verified` is the operator's statement, set with
    /// `valet user update --email-verified`, and goes only with an address.)
    pub fn for_scope<'a>(user: User, scope: impl Iterator<Item = &'a str> + Clone) -> Self {
        Self::released(user, scope, &[])
    }

    /// [`Self::for_scope`], plus the claims named in `extra` one by one (the `claims` request
    /// parameter, Core §5.5).
    pub fn released<'a>(
        user: User,
        scope: impl Iterator<Item = &'a str> + Clone,
        extra: &[String],
    ) -> Self {
        let has = |wanted: &str| scope.clone().any(|s| s == wanted);
        let (profile, email) = (has("profile"), has("email"));
        let (address, phone) = (has("address"), has("phone"));
        let wants = |claim: &str, by_scope: bool| by_scope || extra.iter().any(|c| c == claim);
        let claims = user.profile;
        let email_address = user.email.filter(|_| wants("email", email));
        Self {
            sub: user.id,
            name: user.name.filter(|_| wants("name", profile)),
            given_name: claims.given_name.filter(|_| wants("given_name", profile)),
            family_name: claims.family_name.filter(|_| wants("family_name", profile)),
            preferred_username: wants("preferred_username", profile).then_some(user.username),
            picture: claims.picture.filter(|_| wants("picture", profile)),
            locale: claims.locale.filter(|_| wants("locale", profile)),
            updated_at: wants("updated_at", profile).then_some(user.updated_at.0),
            email_verified: claims
                .email_verified
                .filter(|_| email_address.is_some() && wants("email_verified", email)),
            email: email_address,
            address: claims.address.filter(|_| wants("address", address)),
            phone_number: claims.phone_number.filter(|_| wants("phone_number", phone)),
        }
    }
}

/// What the code being redeemed recorded about the sign-in.
pub struct Authentication<'a> {
    pub user: User,
    pub scope: &'a ScopeSet,
    pub auth_time: UnixTime,
    /// The `nonce` of the authorization request, echoed unchanged (§3.1.2.1).
    pub nonce: Option<&'a str>,
    /// The browser session signed in through; `None` for the password grant.
    pub session: Option<SessionId<'a>>,
    /// Claims the `claims` request parameter asked the ID token for (Core §5.5).
    pub claims: &'a [String],
}

/// A login session as an ID token names it.
pub struct SessionId<'a> {
    /// The stored hash of the session cookie: never leaves the server.
    pub hash: &'a SecretHash,
    /// The public `sid` claim, derived from the hash (see `login::session::sid`).
    pub sid: String,
}

pub struct IdTokenGrant<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub ttl: std::time::Duration,
    pub bound: Bound<'a>,
}

/// What was issued with an ID token and is bound into it by hash (Core §3.3.2.11).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bound<'a> {
    /// Bound by `at_hash`.
    pub access_token: Option<&'a str>,
    /// The code of a hybrid response, bound by `c_hash`.
    pub code: Option<&'a str>,
}

pub fn issue(
    key: &SigningKey,
    grant: &IdTokenGrant<'_>,
    signed_in: Authentication<'_>,
    now: UnixTime,
) -> Result<String, KeyError> {
    let claims = IdTokenClaims {
        iss: grant.issuer,
        aud: grant.client_id,
        exp: now.plus(grant.ttl).0,
        iat: now.0,
        auth_time: signed_in.auth_time.0,
        nonce: signed_in.nonce,
        at_hash: grant
            .bound
            .access_token
            .map(|token| token_hash(key.alg(), token)),
        c_hash: grant.bound.code.map(|code| token_hash(key.alg(), code)),
        sid: signed_in.session.as_ref().map(|s| s.sid.as_str()),
        user: UserInfo::released(signed_in.user, signed_in.scope.iter(), signed_in.claims),
    };
    sign_jwt(key, ID_TOKEN_TYP, &claims)
}

/// What an `id_token_hint` tells (RP-Initiated Logout 1.0 §2): whom, for which client, in
/// which session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Hint {
    pub sub: String,
    pub aud: String,
    #[serde(default)]
    pub sid: Option<String>,
}

/// Verify an ID token Valet issued, as a hint: `typ`, a published `kid`, the signature with
/// that key's algorithm only, and `iss`. Its expiry is not checked: a relying party may
/// well send the ID token of a sign-in that has outlived it (§2, "even when the exp time
/// has passed").
pub fn verify_hint(keys: &KeySet, token: &str, issuer: &str) -> Option<Hint> {
    keys.decode_own(token, ID_TOKEN_TYP, issuer, &["iss", "sub", "aud"])
}

/// `at_hash` (§3.1.3.6) and `c_hash` (§3.3.2.11): the left half of the hash of the token's ASCII octets, with the hash
/// of the signature algorithm: SHA-256 for RS256 and ES256, SHA-512 for EdDSA (Ed25519 signs
/// with SHA-512), base64url.
fn token_hash(alg: SigningAlg, token: &str) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, token.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserProfile;

    fn alice() -> User {
        User {
            id: "u1".into(),
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice Liddell".into()),
            profile: UserProfile::default(),
            password_hash: "$argon2id$…".into(),
            disabled: false,
            created_at: UnixTime(1),
            updated_at: UnixTime(2),
        }
    }

    fn claims(scope: &str) -> serde_json::Value {
        serde_json::to_value(UserInfo::for_scope(alice(), scope.split(' '))).unwrap()
    }

    #[test]
    fn openid_alone_gives_only_the_subject() {
        assert_eq!(claims("openid"), serde_json::json!({"sub": "u1"}));
    }

    #[test]
    fn profile_and_email_release_their_claims() {
        assert_eq!(
            claims("openid profile"),
            serde_json::json!({"sub": "u1", "name": "Alice Liddell",
                "preferred_username": "alice", "updated_at": 2})
        );
        assert_eq!(
            claims("email openid"),
            serde_json::json!({"sub": "u1", "email": "alice@example.com"})
        );
    }

    /// alice with every claim Valet stores.
    fn full_alice() -> User {
        User {
            profile: UserProfile {
                email_verified: Some(true),
                given_name: Some("Alice".into()),
                family_name: Some("Liddell".into()),
                picture: Some("https://example.com/alice.png".into()),
                locale: Some("en-GB".into()),
                phone_number: Some("+44 1865 270000".into()),
                address: Some(Address {
                    locality: Some("Oxford".into()),
                    country: Some("GB".into()),
                    ..Address::default()
                }),
            },
            ..alice()
        }
    }

    fn full_claims(scope: &str) -> serde_json::Value {
        serde_json::to_value(UserInfo::for_scope(full_alice(), scope.split(' '))).unwrap()
    }

    #[test]
    fn each_scope_releases_exactly_its_claims() {
        assert_eq!(full_claims("openid"), serde_json::json!({"sub": "u1"}));
        assert_eq!(
            full_claims("openid profile"),
            serde_json::json!({"sub": "u1", "name": "Alice Liddell", "given_name": "Alice",
                "family_name": "Liddell", "preferred_username": "alice",
                "picture": "https://example.com/alice.png", "locale": "en-GB", "updated_at": 2})
        );
        assert_eq!(
            full_claims("openid email"),
            serde_json::json!({"sub": "u1", "email": "alice@example.com", "email_verified": true})
        );
        assert_eq!(
            full_claims("openid address"),
            serde_json::json!({"sub": "u1", "address": {"locality": "Oxford", "country": "GB"}})
        );
        assert_eq!(
            full_claims("openid phone"),
            serde_json::json!({"sub": "u1", "phone_number": "+44 1865 270000"})
        );
        let all = full_claims("openid profile email address phone");
        assert_eq!(all.as_object().unwrap().len(), 12, "{all}");
    }

    #[test]
    fn email_verified_goes_only_with_an_address() {
        let mut user = full_alice();
        user.email = None;
        let claims = UserInfo::for_scope(user, "openid email".split(' '));
        assert_eq!(
            serde_json::to_value(claims).unwrap(),
            serde_json::json!({"sub": "u1"})
        );
    }

    #[test]
    fn the_password_hash_is_never_a_claim() {
        let text = claims("openid profile email").to_string();
        assert!(!text.contains("argon2"), "{text}");
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OpenID Connect Core §A.3's example access token and at_hash (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(
            token_hash(SigningAlg::RS256, token),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(token_hash(SigningAlg::ES256, token).len(), 22);
        assert_eq!(token_hash(SigningAlg::EdDSA, token).len(), 43);
    }
}
