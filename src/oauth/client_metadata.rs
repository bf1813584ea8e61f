//! Client metadata (RFC 7591 §2; OpenID Connect Registration 1.0 §2, RP-Initiated and
//! Back-Channel Logout; RFC 9126 §6): one set of rules for `valet client create|update` and
//! the registration endpoint, so a client registered either way obeys the same checks.
//!
//! A [`MetadataChange`] names the fields to replace; [`apply`] validates each, sets the
//! authentication method (making a secret when one is needed), then checks the rules that
//! span fields. Errors name the field, which the CLI shows as its option and the
//! registration endpoint as the RFC 7591 member.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::crypto::{SecretHasher, random_token};
use crate::domain::{GrantType, Origin, ScopeSet, UnknownGrantType, is_server_endpoint};
use crate::oauth::redirect;
use crate::store::{Client, ClientKeys, Store, StoreError};
use crate::tokens::client_keys::{check_jwks_uri, parse_jwks};

/// A new client id: 24 letters and digits (about 143 bits). Not base64url, whose `-` could
/// start an id and make it read as an option (`valet client show -K3J…`) or a flag to scripts.
pub fn new_client_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// A metadata field, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ClientName,
    GrantTypes,
    ResponseTypes,
    RedirectUris,
    Scope,
    Audiences,
    AllowedOrigins,
    PostLogoutRedirectUris,
    BackchannelLogoutUri,
    TokenEndpointAuthMethod,
    Keys,
}

impl Field {
    /// The RFC 7591 (or OpenID Registration) member name.
    pub fn member(self) -> &'static str {
        match self {
            Field::ClientName => "client_name",
            Field::GrantTypes => "grant_types",
            Field::ResponseTypes => "response_types",
            Field::RedirectUris => "redirect_uris",
            Field::Scope => "scope",
            Field::Audiences => "audiences",
            Field::AllowedOrigins => "allowed_origins",
            Field::PostLogoutRedirectUris => "post_logout_redirect_uris",
            Field::BackchannelLogoutUri => "backchannel_logout_uri",
            Field::TokenEndpointAuthMethod => "token_endpoint_auth_method",
            Field::Keys => "jwks_uri/jwks",
        }
    }

    /// The `valet client` option that sets it.
    pub fn option(self) -> &'static str {
        match self {
            Field::ClientName => "--name",
            Field::GrantTypes => "--grant-type",
            Field::ResponseTypes => "--grant-type",
            Field::RedirectUris => "--redirect-uri",
            Field::Scope => "--scope",
            Field::Audiences => "--audience",
            Field::AllowedOrigins => "--allowed-origin",
            Field::PostLogoutRedirectUris => "--post-logout-redirect-uri",
            Field::BackchannelLogoutUri => "--backchannel-logout-uri",
            Field::TokenEndpointAuthMethod => "--token-endpoint-auth-method",
            Field::Keys => "--jwks-uri/--jwks-file",
        }
    }
}

/// What kind of mistake, so each caller can answer in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`.
    RedirectUri,
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    Metadata,
    /// An audience that names no API (the CLI's "not found").
    UnknownApi,
}

#[derive(Debug)]
pub enum MetadataError {
    Invalid {
        field: Field,
        problem: Problem,
        message: String,
    },
    Store(StoreError),
    /// The OS random source failed while making a secret.
    Random,
}

impl MetadataError {
    pub fn invalid(field: Field, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: Problem::Metadata,
            message: message.into(),
        }
    }

    fn redirect(field: Field, message: String) -> Self {
        Self::Invalid {
            field,
            problem: Problem::RedirectUri,
            message,
        }
    }
}

impl From<StoreError> for MetadataError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// How a client authenticates (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic` or `client_secret_post`: a client with a secret may use either.
    Secret,
    PrivateKeyJwt,
    None,
}

impl FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client_secret_basic" | "client_secret_post" => Ok(Self::Secret),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            "none" => Ok(Self::None),
            other => Err(format!(
                "`{other}` is not one of client_secret_basic, client_secret_post, private_key_jwt, none"
            )),
        }
    }
}

/// Where new public keys come from.
#[derive(Debug, Clone)]
pub enum KeysInput {
    /// A JWK Set as JSON text (`--jwks-file`, or the `jwks` member).
    Jwks(String),
    JwksUri(String),
}

/// The fields to replace; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MetadataChange {
    pub client_name: Option<String>,
    pub grant_types: Option<Vec<String>>,
    /// Only checked against the grant types: a client's response types follow from them.
    pub response_types: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub scope: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `Some("")` removes it.
    pub backchannel_logout_uri: Option<String>,
    pub require_par: Option<bool>,
    pub first_party: Option<bool>,
    pub auth_method: Option<AuthMethod>,
    pub keys: Option<KeysInput>,
}

/// Apply `change` to `client`, validating every field, then the rules that span fields.
/// Returns a newly made client secret (only its keyed hash is kept), to be shown once.
/// On error the caller discards `client`: nothing has been written.
pub async fn apply(
    client: &mut Client,
    change: MetadataChange,
    store: &dyn Store,
    hasher: &SecretHasher,
) -> Result<Option<String>, MetadataError> {
    if let Some(name) = change.client_name {
        if name.trim().is_empty() {
            return Err(MetadataError::invalid(
                Field::ClientName,
                "must not be empty",
            ));
        }
        if name.chars().any(is_invisible) || name.chars().count() > 200 {
            return Err(MetadataError::invalid(
                Field::ClientName,
                "must be at most 200 characters, without control or formatting characters",
            ));
        }
        client.client_name = name;
    }
    if let Some(grants) = change.grant_types {
        let mut parsed = Vec::new();
        for g in grants.iter().filter(|g| !g.is_empty()) {
            let grant: GrantType = g.parse().map_err(|e: UnknownGrantType| {
                MetadataError::invalid(Field::GrantTypes, e.to_string())
            })?;
            if !parsed.contains(&grant) {
                parsed.push(grant);
            }
        }
        client.grant_types = parsed;
    }
    if let Some(uris) = change.redirect_uris {
        let uris = non_empty(uris);
        for uri in &uris {
            redirect::validate_registration(uri)
                .map_err(|e| MetadataError::redirect(Field::RedirectUris, e))?;
        }
        client.redirect_uris = uris;
    }
    if let Some(scope) = change.scope {
        client.scope = ScopeSet::parse(&scope)
            .map_err(|e| MetadataError::invalid(Field::Scope, e.to_string()))?;
    }
    if let Some(audiences) = change.audiences {
        let audiences = non_empty(audiences);
        for audience in &audiences {
            if store.api(audience).await?.is_none() {
                return Err(MetadataError::Invalid {
                    field: Field::Audiences,
                    problem: Problem::UnknownApi,
                    message: format!(
                        "no API with identifier `{audience}`; create it first with `valet api create`"
                    ),
                });
            }
        }
        client.audiences = audiences;
    }
    if let Some(origins) = change.allowed_origins {
        let origins = non_empty(origins);
        if let Some(bad) = origins.iter().find(|o| Origin::parse(o).is_none()) {
            return Err(MetadataError::invalid(
                Field::AllowedOrigins,
                format!(
                    "`{bad}` is not an origin: write scheme://host[:port], e.g. https://app.example.com, with no path"
                ),
            ));
        }
        client.allowed_origins = origins;
    }
    if let Some(uris) = change.post_logout_redirect_uris {
        let uris = non_empty(uris);
        for uri in &uris {
            redirect::validate_registration(uri)
                .map_err(|e| MetadataError::invalid(Field::PostLogoutRedirectUris, e))?;
        }
        client.logout.post_logout_redirect_uris = uris;
    }
    if let Some(uri) = change.backchannel_logout_uri {
        if !uri.is_empty() && !is_server_endpoint(&uri) {
            return Err(MetadataError::invalid(
                Field::BackchannelLogoutUri,
                format!(
                    "`{uri}` must be an absolute https URI without a fragment (http only on a loopback host)"
                ),
            ));
        }
        client.logout.backchannel_logout_uri = Some(uri).filter(|u| !u.is_empty());
    }
    if let Some(first_party) = change.first_party {
        client.first_party = first_party;
    }
    if let Some(require_par) = change.require_par {
        client.require_par = require_par;
    }
    let keys = change.keys.map(parse_keys).transpose()?;
    // New keys alone make the client a private_key_jwt one.
    let method = change
        .auth_method
        .or(keys.is_some().then_some(AuthMethod::PrivateKeyJwt));
    let secret = match method {
        Some(method) => set_auth_method(client, method, keys, hasher)?,
        None => None,
    };
    if let Some(types) = change.response_types {
        let allowed = client.response_types();
        if let Some(bad) = types.iter().find(|t| !allowed.contains(&t.as_str())) {
            return Err(MetadataError::invalid(
                Field::ResponseTypes,
                format!(
                    "response type `{bad}` does not follow from the grant types (code needs authorization_code; token and id_token need implicit)"
                ),
            ));
        }
    }
    check_consistency(client)?;
    Ok(secret)
}

/// Control characters, and the formatting ones (bidirectional overrides, zero-width joiners,
/// Unicode category Cf) that make a name on the consent page read as something else.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}')
        || ('\u{200B}'..='\u{200F}').contains(&c)
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2060}'..='\u{206F}').contains(&c)
        || ('\u{FFF9}'..='\u{FFFB}').contains(&c)
}

fn non_empty(values: Vec<String>) -> Vec<String> {
    values.into_iter().filter(|v| !v.is_empty()).collect()
}

fn parse_keys(input: KeysInput) -> Result<ClientKeys, MetadataError> {
    match input {
        KeysInput::JwksUri(uri) => {
            check_jwks_uri(&uri).map_err(|e| MetadataError::invalid(Field::Keys, e))?;
            Ok(ClientKeys {
                jwks: None,
                jwks_uri: Some(uri),
            })
        }
        KeysInput::Jwks(text) => {
            parse_jwks(&text).map_err(|e| MetadataError::invalid(Field::Keys, e))?;
            // Stored compact, as one line of JSON.
            let compact = serde_json::from_str::<Value>(&text)
                .map(|v| v.to_string())
                .unwrap_or(text);
            Ok(ClientKeys {
                jwks: Some(compact),
                jwks_uri: None,
            })
        }
    }
}

/// Make `client` authenticate by `method`, with `keys` if given (else the ones it has).
fn set_auth_method(
    client: &mut Client,
    method: AuthMethod,
    keys: Option<ClientKeys>,
    hasher: &SecretHasher,
) -> Result<Option<String>, MetadataError> {
    if method != AuthMethod::PrivateKeyJwt && keys.is_some() {
        return Err(MetadataError::invalid(
            Field::Keys,
            "keys are for token_endpoint_auth_method private_key_jwt",
        ));
    }
    match method {
        AuthMethod::PrivateKeyJwt => {
            if let Some(keys) = keys {
                client.keys = keys;
            }
            if !client.keys.is_set() {
                return Err(MetadataError::invalid(
                    Field::Keys,
                    "private_key_jwt needs the client's public keys (a JWK Set or its URI)",
                ));
            }
            client.secret_hash = None;
            Ok(None)
        }
        AuthMethod::None => {
            client.keys = ClientKeys::default();
            client.secret_hash = None;
            Ok(None)
        }
        AuthMethod::Secret => {
            client.keys = ClientKeys::default();
            if client.secret_hash.is_some() {
                return Ok(None);
            }
            // A fresh 256-bit secret from the OS CSPRNG; only its keyed hash is stored.
            let secret = random_token().map_err(|_| MetadataError::Random)?;
            client.secret_hash = Some(hasher.hash(&secret));
            Ok(Some(secret))
        }
    }
}

/// Rules that involve several fields at once.
fn check_consistency(client: &Client) -> Result<(), MetadataError> {
    if client.grant_types.is_empty() {
        return Err(MetadataError::invalid(
            Field::GrantTypes,
            "a client needs at least one grant type",
        ));
    }
    if client.is_public()
        && let Some(g) = client
            .grant_types
            .iter()
            .find(|g| g.needs_confidential_client())
    {
        return Err(MetadataError::invalid(
            Field::GrantTypes,
            format!(
                "a public client may not use the {g} grant: it has no secret to authenticate with"
            ),
        ));
    }
    // Unreachable through `apply`, which sets one or the other; a row changed by other
    // means must not carry both.
    if client.keys.is_set() && client.secret_hash.is_some() {
        return Err(MetadataError::invalid(
            Field::Keys,
            "a client authenticates with a secret or with private_key_jwt keys, not both",
        ));
    }
    if client.redirect_uris.is_empty()
        && let Some(g) = client.grant_types.iter().find(|g| g.uses_redirect())
    {
        return Err(MetadataError::redirect(
            Field::RedirectUris,
            format!("the {g} grant needs at least one redirect URI"),
        ));
    }
    Ok(())
}

/// A client as RFC 7591 §3.2.1 names its metadata, plus Valet's `audiences`,
/// `allowed_origins`, `first_party` and `dynamically_registered`. `secret` only when new.
pub fn to_json(client: &Client, secret: Option<&str>) -> Value {
    let mut value = json!({
        "client_id": client.client_id,
        "client_name": client.client_name,
        "client_id_issued_at": client.created_at.0,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": client.response_types(),
        "scope": client.scope.to_string(),
        "token_endpoint_auth_method": client.token_endpoint_auth_method(),
        "audiences": client.audiences,
        "allowed_origins": client.allowed_origins,
        "first_party": client.first_party,
        "post_logout_redirect_uris": client.logout.post_logout_redirect_uris,
        "require_pushed_authorization_requests": client.require_par,
        "dynamically_registered": client.is_registered(),
    });
    let Value::Object(map) = &mut value else {
        unreachable!("json! of an object literal");
    };
    if let Some(uri) = &client.keys.jwks_uri {
        map.insert("jwks_uri".into(), json!(uri));
    }
    if let Some(jwks) = &client.keys.jwks {
        let jwks: Value = serde_json::from_str(jwks).unwrap_or_else(|_| json!(jwks));
        map.insert("jwks".into(), jwks);
    }
    if let Some(uri) = &client.logout.backchannel_logout_uri {
        map.insert("backchannel_logout_uri".into(), json!(uri));
        // Back-Channel Logout 1.0 §2.2: Valet's logout tokens always carry `sid`.
        map.insert("backchannel_logout_session_required".into(), json!(true));
    }
    if let Some(secret) = secret {
        map.insert("client_secret".into(), json!(secret));
        // RFC 7591: 0 means the secret does not expire.
        map.insert("client_secret_expires_at".into(), json!(0));
    }
    value
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.member())
    }
}
