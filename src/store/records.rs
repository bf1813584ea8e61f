//! What the store holds, as the rest of Valet sees it, and the row types both engines decode.
//! Lists are JSON text in the store so that one column type serves both engines.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::StoreError;
use crate::crypto::SecretHash;
use crate::domain::{GrantId, GrantType, RequestedClaims, ScopeSet, UnixTime};

/// A registered client (RFC 6749 §2).
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    /// `None` for a public client, which authenticates with `none` and must use PKCE.
    pub secret_hash: Option<SecretHash>,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    /// The scopes this client may be granted (before the API and the user have their say).
    pub scope: ScopeSet,
    pub audiences: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub first_party: bool,
    pub logout: ClientLogout,
    /// RFC 9126 §6: `/authorize` only through a pushed request.
    pub require_par: bool,
    /// The keys a `private_key_jwt` client signs its assertions with (RFC 7523).
    pub keys: ClientKeys,
    /// Set for a client that registered itself (RFC 7591).
    pub registration: Option<Registration>,
    /// Bumped by every update; an update names the revision it read (see `UPDATE_CLIENT`).
    pub revision: i64,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// How a client registered itself, and its current registration access token (RFC 7592).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// With an initial access token (`registration.mode = "token"`), not anonymously.
    pub with_initial_token: bool,
    /// The keyed hash of the registration access token: rotated on every update; `None` once
    /// an administrator revokes it.
    pub access_token_hash: Option<SecretHash>,
}

impl Registration {
    fn via(&self) -> &'static str {
        if self.with_initial_token {
            "token"
        } else {
            "open"
        }
    }
}

/// Where a client's public keys are (RFC 7591 `jwks` / `jwks_uri`): at most one is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientKeys {
    /// A JWK Set, as JSON text.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
}

impl ClientKeys {
    pub fn is_set(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some()
    }
}

/// Where a client hears of sign-outs (OpenID Connect RP-Initiated and Back-Channel Logout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientLogout {
    /// Where `end_session_endpoint` may send the browser back to; matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are posted when a session the client got an ID token in ends.
    pub backchannel_logout_uri: Option<String>,
}

impl Client {
    /// Registered through the registration endpoint rather than by an administrator.
    pub fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    /// The `registered_via` column.
    pub(super) fn registered_via(&self) -> Option<&'static str> {
        self.registration.as_ref().map(Registration::via)
    }

    /// The `registration_token_hash` column.
    pub(super) fn registration_token_hash(&self) -> Option<&[u8]> {
        self.registration
            .as_ref()
            .and_then(|r| r.access_token_hash.as_ref())
            .map(|h| h.0.as_slice())
    }

    /// A client with neither a secret nor keys: it cannot authenticate (`none`).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none() && !self.keys.is_set()
    }

    /// A confidential client that authenticates with a signed assertion (RFC 7523 §2.2).
    pub fn uses_private_key_jwt(&self) -> bool {
        self.secret_hash.is_none() && self.keys.is_set()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn may_use_audience(&self, audience: &str) -> bool {
        self.audiences.iter().any(|a| a == audience)
    }

    /// RFC 7591 `token_endpoint_auth_method`.
    pub fn token_endpoint_auth_method(&self) -> &'static str {
        if self.uses_private_key_jwt() {
            "private_key_jwt"
        } else if self.is_public() {
            "none"
        } else {
            "client_secret_basic"
        }
    }

    /// RFC 7591 `response_types`, derived from the grant types.
    /// The hybrid ones need both grants (SPEC §9).
    pub fn response_types(&self) -> Vec<&'static str> {
        let code = self.allows_grant(GrantType::AuthorizationCode);
        let implicit = self.allows_grant(GrantType::Implicit);
        let mut types = Vec::new();
        if code {
            types.push("code");
        }
        if implicit {
            types.extend(["token", "id_token", "id_token token"]);
        }
        if code && implicit {
            types.extend(["code id_token", "code token", "code id_token token"]);
        }
        types
    }
}

/// A resource owner (RFC 6749 §1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Stable and never reused: the `sub` of the user's tokens.
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The other standard claims (OpenID Connect Core §5.1), one JSON column.
    pub profile: UserProfile,
    /// Argon2id in PHC string format.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: UnixTime,
    /// When the user's record last changed: the `updated_at` claim.
    pub updated_at: UnixTime,
}

/// The standard claims of a user beyond `email` and `name` (OpenID Connect Core §5.1), under
/// their claim names; unset ones are left out of the stored JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserProfile {
    /// As the operator says: Valet itself verifies nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// An http(s) URL of a picture of the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// A BCP 47 language tag, e.g. `en-US`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// The `address` claim (OpenID Connect Core §5.1.1), members left out when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    /// The full mailing address, formatted for display; may hold several lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// House number, street and the like; may hold several lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    /// City or locality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State, province, prefecture or region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

/// A member of [`Address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPart {
    Formatted,
    StreetAddress,
    Locality,
    Region,
    PostalCode,
    Country,
}

/// One change to a user's claims: `None` clears the claim. The CLI validates the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimEdit {
    Email(Option<String>),
    EmailVerified(bool),
    Name(Option<String>),
    GivenName(Option<String>),
    FamilyName(Option<String>),
    Picture(Option<String>),
    Locale(Option<String>),
    PhoneNumber(Option<String>),
    Address(AddressPart, Option<String>),
}

impl ClaimEdit {
    /// Apply `edits` to `user`; true if anything changed. A new email address is not the one
    /// that was verified: it drops `email_verified` unless the same edits set it again.
    pub fn apply_all(edits: &[ClaimEdit], user: &mut User) -> bool {
        let before = user.clone();
        for edit in edits {
            edit.apply(user);
        }
        let verified_given = edits
            .iter()
            .any(|e| matches!(e, ClaimEdit::EmailVerified(_)));
        if user.email != before.email && !verified_given {
            user.profile.email_verified = None;
        }
        *user != before
    }

    fn apply(&self, user: &mut User) {
        let profile = &mut user.profile;
        match self.clone() {
            ClaimEdit::Email(value) => user.email = value,
            ClaimEdit::EmailVerified(value) => profile.email_verified = Some(value),
            ClaimEdit::Name(value) => user.name = value,
            ClaimEdit::GivenName(value) => profile.given_name = value,
            ClaimEdit::FamilyName(value) => profile.family_name = value,
            ClaimEdit::Picture(value) => profile.picture = value,
            ClaimEdit::Locale(value) => profile.locale = value,
            ClaimEdit::PhoneNumber(value) => profile.phone_number = value,
            ClaimEdit::Address(part, value) => {
                let mut address = profile.address.take().unwrap_or_default();
                let member = match part {
                    AddressPart::Formatted => &mut address.formatted,
                    AddressPart::StreetAddress => &mut address.street_address,
                    AddressPart::Locality => &mut address.locality,
                    AddressPart::Region => &mut address.region,
                    AddressPart::PostalCode => &mut address.postal_code,
                    AddressPart::Country => &mut address.country,
                };
                *member = value;
                // An address with no member left is no address (never `"address": {}`).
                profile.address = (!address.is_empty()).then_some(address);
            }
        }
    }
}

/// A resource server: its identifier is the `aud` of tokens for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub identifier: String,
    pub name: String,
    pub scopes: ScopeSet,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, not yet signing: it becomes current at its `activates_at`.
    Next,
    Current,
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Current => "current",
            KeyStatus::Retired => "retired",
        }
    }
}

/// A signing key as stored: the private half sealed under the server secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub status: KeyStatus,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
    /// When a `next` key becomes current.
    pub activates_at: Option<UnixTime>,
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("corrupt {column} column: {e}")))
}

#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    pub client_id: String,
    pub client_name: String,
    pub secret_hash: Option<Vec<u8>>,
    pub grant_types: String,
    pub redirect_uris: String,
    pub scope: String,
    pub audiences: String,
    pub allowed_origins: String,
    pub first_party: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub post_logout_redirect_uris: String,
    pub backchannel_logout_uri: Option<String>,
    pub require_par: bool,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub registered_via: Option<String>,
    pub registration_token_hash: Option<Vec<u8>>,
    pub revision: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Client {
            client_id: row.client_id,
            client_name: row.client_name,
            secret_hash: row.secret_hash.map(SecretHash),
            grant_types: from_json("grant_types", &row.grant_types)?,
            redirect_uris: from_json("redirect_uris", &row.redirect_uris)?,
            scope: ScopeSet::parse(&row.scope)
                .map_err(|e| StoreError::Internal(format!("corrupt scope: {e}")))?,
            audiences: from_json("audiences", &row.audiences)?,
            allowed_origins: from_json("allowed_origins", &row.allowed_origins)?,
            first_party: row.first_party,
            logout: ClientLogout {
                post_logout_redirect_uris: from_json(
                    "post_logout_redirect_uris",
                    &row.post_logout_redirect_uris,
                )?,
                backchannel_logout_uri: row.backchannel_logout_uri,
            },
            require_par: row.require_par,
            keys: ClientKeys {
                jwks: row.jwks,
                jwks_uri: row.jwks_uri,
            },
            registration: row.registered_via.map(|via| Registration {
                with_initial_token: via == "token",
                access_token_hash: row.registration_token_hash.map(SecretHash),
            }),
            revision: row.revision,
            created_at: UnixTime(row.created_at),
            updated_at: UnixTime(row.updated_at),
        })
    }
}

/// The JSON-encoded columns of a client, in the order the statements bind them.
pub(super) struct ClientColumns {
    pub grant_types: String,
    pub redirect_uris: String,
    pub scope: String,
    pub audiences: String,
    pub allowed_origins: String,
    pub post_logout_redirect_uris: String,
}

impl From<&Client> for ClientColumns {
    fn from(client: &Client) -> Self {
        Self {
            grant_types: to_json(&client.grant_types),
            redirect_uris: to_json(&client.redirect_uris),
            scope: client.scope.to_string(),
            audiences: to_json(&client.audiences),
            allowed_origins: to_json(&client.allowed_origins),
            post_logout_redirect_uris: to_json(&client.logout.post_logout_redirect_uris),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub profile: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: row.id,
            username: row.username,
            email: row.email,
            name: row.name,
            profile: from_json("profile", &row.profile)?,
            password_hash: row.password_hash,
            disabled: row.disabled,
            created_at: UnixTime(row.created_at),
            updated_at: UnixTime(row.updated_at),
        })
    }
}

pub(super) fn user_profile_json(user: &User) -> String {
    serde_json::to_string(&user.profile).unwrap_or_else(|_| "{}".into())
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiRow {
    pub identifier: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
}

impl TryFrom<ApiRow> for Api {
    type Error = StoreError;

    fn try_from(row: ApiRow) -> Result<Self, StoreError> {
        let scopes: Vec<String> = from_json("scopes", &row.scopes)?;
        Ok(Api {
            identifier: row.identifier,
            name: row.name,
            scopes: ScopeSet::from_tokens(scopes),
            created_at: UnixTime(row.created_at),
        })
    }
}

pub(super) fn api_scopes_json(api: &Api) -> String {
    to_json(&api.scopes.iter().collect::<Vec<_>>())
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub status: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub activates_at: Option<i64>,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let status = match row.status.as_str() {
            "next" => KeyStatus::Next,
            "current" => KeyStatus::Current,
            "retired" => KeyStatus::Retired,
            other => {
                return Err(StoreError::Internal(format!(
                    "unknown key status `{other}`"
                )));
            }
        };
        Ok(StoredKey {
            kid: row.kid,
            alg: row.alg,
            status,
            sealed_private_key: row.private_key,
            public_jwk: row.public_jwk,
            created_at: UnixTime(row.created_at),
            retired_at: row.retired_at.map(UnixTime),
            activates_at: row.activates_at.map(UnixTime),
        })
    }
}

/// An authorization code as stored (RFC 6749 §4.1.2): only its hash, bound to client,
/// redirect URI, PKCE challenge, scope, audience, user and session.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    pub code_hash: SecretHash,
    pub grant_id: GrantId,
    pub client_id: String,
    pub user_id: String,
    pub session_hash: Option<SecretHash>,
    /// The `redirect_uri` sent to `/authorize`; `None` if the request named none (§4.1.3).
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub scope: ScopeSet,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// What the `claims` request parameter asked for (Core §5.5).
    pub claims: RequestedClaims,
}

/// What one redemption attempt found. Exactly one of any number of concurrent attempts on
/// the same code gets `Issued`.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    Issued(Box<AuthorizationCode>),
    Unknown,
    /// Issued to another client; left untouched.
    WrongClient,
    Expired,
    /// Redeemed before: the grant it belongs to should be revoked (RFC 6749 §4.1.2).
    Replayed {
        grant_id: GrantId,
    },
}

#[derive(sqlx::FromRow)]
pub(super) struct CodeRow {
    pub code_hash: Vec<u8>,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_hash: Option<Vec<u8>>,
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub scope: String,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    /// Read as `code_created_at` (see `sql::code_read_columns`).
    #[sqlx(rename = "code_created_at")]
    pub created_at: i64,
    pub expires_at: i64,
    pub claims: Option<String>,
}

impl TryFrom<CodeRow> for AuthorizationCode {
    type Error = StoreError;

    fn try_from(row: CodeRow) -> Result<Self, StoreError> {
        Ok(AuthorizationCode {
            code_hash: SecretHash(row.code_hash),
            grant_id: GrantId::from_stored(row.grant_id),
            client_id: row.client_id,
            user_id: row.user_id,
            session_hash: row.session_hash.map(SecretHash),
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            code_challenge_method: row.code_challenge_method,
            scope: ScopeSet::parse(&row.scope)
                .map_err(|e| StoreError::Internal(format!("corrupt scope: {e}")))?,
            audience: row.audience,
            nonce: row.nonce,
            auth_time: UnixTime(row.auth_time),
            created_at: UnixTime(row.created_at),
            expires_at: UnixTime(row.expires_at),
            claims: row
                .claims
                .as_deref()
                .map(|text| from_json("claims", text))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// Why a conditional redemption changed no row.
#[derive(sqlx::FromRow)]
pub(super) struct CodeStateRow {
    pub client_id: String,
    pub grant_id: String,
    pub consumed_at: Option<i64>,
}

/// An `/authorize` request waiting for the person to sign in and consent, so that any
/// replica can continue it. `id_hash` is the hash of the opaque id in the page URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRequest {
    pub id_hash: SecretHash,
    pub client_id: String,
    /// The validated request, serialized by the authorization endpoint.
    pub request: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(sqlx::FromRow)]
pub(super) struct PendingRow {
    pub id: String,
    pub client_id: String,
    pub request: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl TryFrom<PendingRow> for PendingRequest {
    type Error = StoreError;

    fn try_from(row: PendingRow) -> Result<Self, StoreError> {
        Ok(PendingRequest {
            id_hash: SecretHash::from_text(&row.id)
                .ok_or_else(|| StoreError::Internal("corrupt pending request id".into()))?,
            client_id: row.client_id,
            request: row.request,
            created_at: UnixTime(row.created_at),
            expires_at: UnixTime(row.expires_at),
        })
    }
}

/// A server-side login session; the browser holds only the id, the store only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id_hash: SecretHash,
    pub user_id: String,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_id: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id_hash: SecretHash(row.id_hash),
            user_id: row.user_id,
            auth_time: UnixTime(row.auth_time),
            created_at: UnixTime(row.created_at),
            expires_at: UnixTime(row.expires_at),
        }
    }
}

/// What a user has allowed a client for one API (`audience`; empty where none applies).
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub audience: String,
    pub scope: ScopeSet,
}

/// A refresh token as stored (RFC 6749 §6): only its hash, in a family that rotation extends
/// one token at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub token_hash: SecretHash,
    pub family_id: String,
    /// The token this one replaced; `None` for the first of its family.
    pub parent_hash: Option<SecretHash>,
    pub grant_id: GrantId,
    pub client_id: String,
    pub user_id: String,
    pub scope: ScopeSet,
    pub audience: String,
    /// The code the family came from, for the authorization code grant.
    pub code_hash: Option<SecretHash>,
    /// The browser session the family was signed in through, and when: a refresh issues its
    /// ID token with them (`None` for the password grant, which has no session).
    pub session_hash: Option<SecretHash>,
    pub auth_time: Option<UnixTime>,
    pub issued_at: UnixTime,
    /// Idle expiry of this token.
    pub expires_at: UnixTime,
    /// Absolute expiry of the family.
    pub family_expires_at: UnixTime,
    pub rotated_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
    /// Read only: the grant was revoked (a replayed code), which revokes the family too.
    pub grant_revoked: bool,
}

#[derive(sqlx::FromRow)]
pub(super) struct RefreshRow {
    pub token_hash: Vec<u8>,
    pub family_id: String,
    pub parent_hash: Option<Vec<u8>>,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub audience: Option<String>,
    pub code_hash: Option<Vec<u8>>,
    pub session_hash: Option<Vec<u8>>,
    pub auth_time: Option<i64>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub family_expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub grant_revoked: bool,
}

impl TryFrom<RefreshRow> for RefreshToken {
    type Error = StoreError;

    fn try_from(row: RefreshRow) -> Result<Self, StoreError> {
        Ok(RefreshToken {
            token_hash: SecretHash(row.token_hash),
            family_id: row.family_id,
            parent_hash: row.parent_hash.map(SecretHash),
            grant_id: GrantId::from_stored(row.grant_id),
            client_id: row.client_id,
            user_id: row.user_id,
            scope: ScopeSet::parse(&row.scope)
                .map_err(|e| StoreError::Internal(format!("corrupt scope: {e}")))?,
            audience: row.audience.unwrap_or_default(),
            code_hash: row.code_hash.map(SecretHash),
            session_hash: row.session_hash.map(SecretHash),
            auth_time: row.auth_time.map(UnixTime),
            issued_at: UnixTime(row.issued_at),
            expires_at: UnixTime(row.expires_at),
            family_expires_at: UnixTime(row.family_expires_at),
            rotated_at: row.rotated_at.map(UnixTime),
            revoked_at: row.revoked_at.map(UnixTime),
            grant_revoked: row.grant_revoked,
        })
    }
}

/// A client that got an ID token in a session, to be told when the session ends.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionClient {
    pub session_hash: SecretHash,
    pub client_id: String,
    /// The `sid` of its ID tokens.
    pub sid: String,
    pub user_id: String,
    pub expires_at: UnixTime,
}

/// A logout token waiting to be posted (Back-Channel Logout 1.0 §2.5).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LogoutDelivery {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    pub sid: String,
    pub user_id: String,
    pub attempts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> User {
        User {
            id: "u1".into(),
            username: "bob".into(),
            email: Some("bob@example.com".into()),
            name: None,
            profile: UserProfile {
                email_verified: Some(true),
                ..UserProfile::default()
            },
            password_hash: "hash".into(),
            disabled: false,
            created_at: UnixTime(1),
            updated_at: UnixTime(1),
        }
    }

    #[test]
    fn a_new_email_address_is_not_verified_unless_said_again() {
        let mut user = bob();
        let changed =
            ClaimEdit::apply_all(&[ClaimEdit::Email(Some("b@x.example".into()))], &mut user);
        assert!(changed);
        assert_eq!(user.profile.email_verified, None);

        let mut user = bob();
        let edits = [
            ClaimEdit::EmailVerified(true),
            ClaimEdit::Email(Some("b@x.example".into())),
        ];
        ClaimEdit::apply_all(&edits, &mut user);
        assert_eq!(user.profile.email_verified, Some(true), "in any order");

        let mut user = bob();
        let same = [ClaimEdit::Email(Some("bob@example.com".into()))];
        assert!(!ClaimEdit::apply_all(&same, &mut user), "the same address");
        assert_eq!(user, bob());
    }

    #[test]
    fn an_address_with_no_member_left_is_no_address() {
        let mut user = bob();
        let city = |value: Option<&str>| {
            ClaimEdit::Address(AddressPart::Locality, value.map(str::to_owned))
        };
        ClaimEdit::apply_all(&[city(Some("Oxford"))], &mut user);
        let address = user.profile.address.clone().expect("an address");
        assert_eq!(address.locality.as_deref(), Some("Oxford"));
        ClaimEdit::apply_all(&[city(None)], &mut user);
        assert_eq!(user.profile.address, None);
    }

    #[test]
    fn the_profile_column_leaves_unset_claims_out() {
        let mut user = bob();
        user.profile.locale = Some("en-GB".into());
        assert_eq!(
            user_profile_json(&user),
            r#"{"email_verified":true,"locale":"en-GB"}"#
        );
        let read: UserProfile = from_json("profile", "{}").unwrap();
        assert_eq!(read, UserProfile::default());
    }
}

/// A grant as access-token checks read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantStatus {
    pub revoked: bool,
    /// Claims the `claims` parameter asked UserInfo for (Core §5.5).
    pub userinfo_claims: Vec<String>,
}

impl GrantStatus {
    /// From `GRANT_STATUS`'s columns; `userinfo_claims` is a JSON array or NULL.
    pub(super) fn from_columns(revoked: bool, claims: Option<String>) -> Result<Self, StoreError> {
        Ok(GrantStatus {
            revoked,
            userinfo_claims: match claims {
                Some(text) => from_json("userinfo_claims", &text)?,
                None => Vec::new(),
            },
        })
    }
}

/// A device sign-in (RFC 8628) as stored: both codes only as hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceAuthorization {
    pub device_code_hash: SecretHash,
    /// The keyed hash of the normalised user code, as text (it is looked up by value).
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: ScopeSet,
    pub audience: String,
    /// Who approved it and when they signed in, once approved.
    pub user_id: Option<String>,
    pub auth_time: Option<UnixTime>,
    pub interval_secs: i64,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What one poll of the token endpoint found (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq)]
pub enum DevicePoll {
    /// No such device code for this client.
    Unknown,
    Expired,
    Denied,
    /// Approved and already turned into tokens: the device code is spent.
    Spent,
    Pending,
    /// Polled faster than its interval, which is now 5 s longer.
    SlowDown,
    /// Approved: this poll, and no other, gets the tokens.
    Approved(Box<DeviceAuthorization>),
}

#[derive(sqlx::FromRow)]
pub(super) struct DeviceRow {
    pub device_code_hash: Vec<u8>,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub audience: String,
    pub status: String,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    pub interval_secs: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl TryFrom<DeviceRow> for DeviceAuthorization {
    type Error = StoreError;

    fn try_from(row: DeviceRow) -> Result<Self, StoreError> {
        Ok(DeviceAuthorization {
            device_code_hash: SecretHash(row.device_code_hash),
            user_code_hash: row.user_code_hash,
            client_id: row.client_id,
            scope: ScopeSet::parse(&row.scope)
                .map_err(|e| StoreError::Internal(format!("corrupt scope: {e}")))?,
            audience: row.audience,
            user_id: row.user_id,
            auth_time: row.auth_time.map(UnixTime),
            interval_secs: row.interval_secs,
            created_at: UnixTime(row.created_at),
            expires_at: UnixTime(row.expires_at),
        })
    }
}

/// An initial access token for client registration (`valet registration token create`).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationToken {
    pub token_hash: SecretHash,
    pub uses_left: u32,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What [`Store::register_client`](super::Store::register_client) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Done,
    /// The initial access token is unknown, used up or expired: nothing was written.
    InitialTokenRejected,
    /// `registration.max_clients` registered clients exist already: nothing was written.
    Full,
}
