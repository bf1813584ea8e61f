//! Dynamic client registration (RFC 7591 §3) and client configuration (RFC 7592 §2).
//!
//! Registered metadata goes through the same checks as `valet client create`
//! ([`client_metadata::apply`]). On top of those, a client that registers itself is held to
//! what an anonymous party may get: never first-party (its users always see consent), never
//! the password grant, client credentials only with an initial access token, only the APIs in
//! `registration.audiences`, and no address Valet would send requests to (`jwks_uri`,
//! `backchannel_logout_uri`). Software statements are not accepted.
//!
//! The registration access token (RFC 7592 §1.1) is 256 random bits; only its keyed hash is
//! stored. Each update hands out a new one in the same conditional write that checks the old
//! one, so of two racing updates with one token exactly one succeeds.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::client_metadata::{
    self, AuthMethod, KeysInput, MetadataChange, MetadataError, Problem, new_client_id,
};
use super::error::{Challenge, ErrorCode, OAuthError};
use super::metadata::REGISTRATION_PATH;
use crate::audit;
use crate::config::RegistrationMode;
use crate::core::Core;
use crate::crypto::{SecretHash, SecretHasher, random_token};
use crate::domain::{GrantType, ScopeSet, UnixTime};
use crate::store::{Client, Registered, Registration, RegistrationToken, Store, StoreError};

/// The name of a client that registers none.
const UNNAMED: &str = "Unnamed client";

/// At most this many entries in each list a client registers for itself (redirect URIs,
/// origins, logout URIs, audiences), each at most [`MAX_MEMBER_BYTES`].
const MAX_LIST: usize = 10;
const MAX_MEMBER_BYTES: usize = 2048;

/// A client as the registration endpoint answers with it: its metadata, a new secret (if
/// one was made) and a new registration access token (RFC 7591 §3.2.1, RFC 7592 §3).
pub struct RegisteredClient {
    pub client: Client,
    pub secret: Option<String>,
    pub access_token: Option<String>,
}

impl RegisteredClient {
    pub fn to_json(&self, core: &Core) -> Value {
        let mut value = client_metadata::to_json(&self.client, self.secret.as_deref());
        if let Value::Object(map) = &mut value {
            // RFC 7591 §3.2.1: required whenever a secret was issued, not only when shown.
            if self.client.secret_hash.is_some() {
                map.insert("client_secret_expires_at".into(), json!(0));
            }
            if self.client.scope.is_empty() {
                map.remove("scope");
            }
            map.insert(
                "registration_client_uri".into(),
                json!(configuration_uri(core, &self.client.client_id)),
            );
            if let Some(token) = &self.access_token {
                map.insert("registration_access_token".into(), json!(token));
            }
        }
        value
    }
}

/// RFC 7592 §1: where the client reads, updates and deletes its registration.
/// Registered clients get generated ids of letters and digits, so the id needs no escaping.
pub fn configuration_uri(core: &Core, client_id: &str) -> String {
    format!("{}/{client_id}", core.settings.endpoint(REGISTRATION_PATH))
}

/// RFC 7591 §3: register a client. `initial_token` is the bearer token of the request (needed
/// in `token` mode); `address` is whose registrations are counted.
pub async fn register(
    core: &Core,
    body: &Value,
    initial_token: Option<&str>,
    address: IpAddr,
) -> Result<RegisteredClient, OAuthError> {
    let now = core.clock.now();
    let mode = core.settings.registration.mode;
    let initial_token = match (mode, initial_token) {
        (RegistrationMode::Closed, _) => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "client registration is closed on this server",
            ));
        }
        (RegistrationMode::Token, None) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidToken,
                "registration needs an initial access token: Authorization: Bearer <token>",
            )
            .with_challenge(Some(Challenge::BearerWithoutError)));
        }
        (RegistrationMode::Token, Some(token)) => Some(core.server_keys.hasher.hash(token)),
        (RegistrationMode::Open, _) => None,
    };
    // Holders of an initial access token were let in by an administrator; anonymous
    // registrants are counted per address.
    if mode == RegistrationMode::Open
        && let Err(locked) = core
            .limiter
            .reserve_registration(address, core.settings.registration.per_address, now)
            .await?
    {
        return Err(OAuthError::rate_limited(
            locked.retry_after,
            "too many registrations from this address; try again later",
        ));
    }
    let object = as_object(body)?;
    let mut client = blank(new_client_id(), now, mode == RegistrationMode::Token);
    let secret = apply_registered_metadata(core, &mut client, object).await?;
    let access_token = new_access_token(core, &mut client)?;
    let max = core.settings.registration.max_clients;
    match core
        .store
        .register_client(&client, initial_token.as_ref(), max, now)
        .await
    {
        Ok(Registered::Done) => {}
        Ok(Registered::InitialTokenRejected) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidToken,
                "the initial access token is unknown, used up or expired",
            ));
        }
        Ok(Registered::Full) => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "this server has as many registered clients as it accepts",
            ));
        }
        // A new 143-bit id equal to an existing user's id: as likely as guessing a key.
        Err(StoreError::Conflict) => {
            return Err(OAuthError::server_error("generated client id is taken"));
        }
        Err(e) => return Err(e.into()),
    }
    audit::client_registered(&client.client_id, address);
    Ok(RegisteredClient {
        client,
        secret,
        access_token: Some(access_token),
    })
}

/// What a registration starts from; every member the request sends replaces a field.
fn blank(client_id: String, now: UnixTime, with_initial_token: bool) -> Client {
    Client {
        client_id,
        client_name: UNNAMED.into(),
        secret_hash: None,
        grant_types: vec![],
        redirect_uris: vec![],
        scope: ScopeSet::default(),
        audiences: vec![],
        allowed_origins: vec![],
        first_party: false,
        logout: Default::default(),
        require_par: false,
        keys: Default::default(),
        registration: Some(Registration {
            with_initial_token,
            access_token_hash: None,
        }),
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

/// A new registration access token for `client` (its hash kept on the client).
fn new_access_token(core: &Core, client: &mut Client) -> Result<String, OAuthError> {
    let token = random_token().map_err(|e| OAuthError::server_error(e.to_string()))?;
    if let Some(registration) = &mut client.registration {
        registration.access_token_hash = Some(core.server_keys.hasher.hash(&token));
    }
    Ok(token)
}

/// RFC 7592 §2.1: the client's registration, for the holder of its access token (which §3
/// requires in the answer; it is not rotated by a read).
pub async fn read(
    core: &Core,
    client_id: &str,
    token: &str,
) -> Result<RegisteredClient, OAuthError> {
    let (client, _) = authorized(core, client_id, token).await?;
    Ok(RegisteredClient {
        client,
        secret: None,
        access_token: Some(token.to_owned()),
    })
}

/// RFC 7592 §2.2: replace the client's metadata with `body` (omitted members are cleared or
/// take their defaults); a new registration access token replaces the presented one.
pub async fn update(
    core: &Core,
    client_id: &str,
    token: &str,
    body: &Value,
) -> Result<RegisteredClient, OAuthError> {
    let (stored, presented) = authorized(core, client_id, token).await?;
    let object = as_object(body)?;
    // The members the server sets (RFC 7592 §2.2) are ignored, so a client can send back
    // what it read.
    if object.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(metadata_error(
            "client_id",
            "must be in the body and match the client being updated",
        ));
    }
    // RFC 7592 §2.2: a client may echo its secret but never choose one.
    if let Some(secret) = object.get("client_secret") {
        let matches = match (secret.as_str(), &stored.secret_hash) {
            (Some(secret), Some(hash)) => core.server_keys.hasher.verify(secret, hash),
            _ => false,
        };
        if !matches {
            return Err(metadata_error(
                "client_secret",
                "does not match the secret issued to this client (a client cannot choose one)",
            ));
        }
    }
    // Every member is replaced (RFC 7592 §2.2): start from a blank registration, keeping only
    // what is not metadata: the id, how it registered, its secret and keys (which the auth
    // method then keeps or drops), its revision and creation time.
    let with_initial_token = stored
        .registration
        .as_ref()
        .is_some_and(|r| r.with_initial_token);
    let mut client = Client {
        secret_hash: stored.secret_hash.clone(),
        keys: stored.keys.clone(),
        revision: stored.revision,
        ..blank(
            stored.client_id.clone(),
            stored.created_at,
            with_initial_token,
        )
    };
    let secret = apply_registered_metadata(core, &mut client, object).await?;
    let access_token = new_access_token(core, &mut client)?;
    client.updated_at = core.clock.now();
    if !core
        .store
        .update_registered_client(&client, &presented)
        .await?
    {
        // The token was spent by a racing update, or an administrator changed the client
        // meanwhile: either way this update did not happen.
        authorized(core, client_id, token).await?;
        return Err(OAuthError::invalid_request(
            "the registration changed while this update was made; read it again and retry",
        ));
    }
    audit::client_updated(client_id);
    Ok(RegisteredClient {
        client,
        secret,
        access_token: Some(access_token),
    })
}

/// RFC 7592 §2.3: delete the client, with everything it was issued.
pub async fn delete(core: &Core, client_id: &str, token: &str) -> Result<(), OAuthError> {
    let (_, presented) = authorized(core, client_id, token).await?;
    if !core
        .store
        .delete_registered_client(client_id, &presented)
        .await?
    {
        return Err(invalid_token());
    }
    audit::client_deleted(client_id);
    Ok(())
}

/// Issue an initial access token (`valet registration token create`): `uses` registrations
/// until `expires_at`. Returns the token, shown once; only its hash is kept.
pub async fn create_initial_token(
    store: &dyn Store,
    hasher: &SecretHasher,
    uses: u32,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<String, OAuthError> {
    let token = random_token().map_err(|e| OAuthError::server_error(e.to_string()))?;
    store
        .insert_registration_token(&RegistrationToken {
            token_hash: hasher.hash(&token),
            uses_left: uses,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(token)
}

fn invalid_token() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the registration access token is not valid for this client",
    )
}

/// The client if `token` is its current registration access token (compared in constant
/// time), with the token's hash. An unknown client and a wrong token get the same answer
/// (RFC 7592 §2.1: 401), so the endpoint does not tell which client ids exist.
async fn authorized(
    core: &Core,
    client_id: &str,
    token: &str,
) -> Result<(Client, SecretHash), OAuthError> {
    let presented = core.server_keys.hasher.hash(token);
    let client = core.store.client(client_id).await?;
    match client {
        Some(client)
            if client
                .registration
                .as_ref()
                .and_then(|r| r.access_token_hash.as_ref())
                .is_some_and(|stored| presented.matches(stored)) =>
        {
            Ok((client, presented))
        }
        _ => Err(invalid_token()),
    }
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, OAuthError> {
    body.as_object().ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body must be a JSON object of client metadata",
        )
    })
}

/// Apply the registration request's members to `client` with the CLI's checks, then the
/// rules for a client that registered itself. Returns a new secret, if one was made.
async fn apply_registered_metadata(
    core: &Core,
    client: &mut Client,
    object: &Map<String, Value>,
) -> Result<Option<String>, OAuthError> {
    if object.contains_key("software_statement") {
        return Err(OAuthError::new(
            ErrorCode::UnapprovedSoftwareStatement,
            "this server accepts no software statements; register without software_statement",
        ));
    }
    // A client echoing what it read back (`first_party: false`) is fine.
    if object
        .get("first_party")
        .is_some_and(|v| v != &Value::Bool(false))
    {
        return Err(metadata_error(
            "first_party",
            "a registered client cannot be first-party",
        ));
    }
    // Valet fetches a jwks_uri and posts to a backchannel_logout_uri: taken from anyone, they
    // would let an anonymous party aim the server's own requests at internal addresses.
    for member in ["jwks_uri", "backchannel_logout_uri"] {
        if object.get(member).is_some_and(|v| !v.is_null()) {
            return Err(metadata_error(
                member,
                "Valet sends no requests to addresses a client registers itself (register jwks inline; an administrator can set this with valet client update)",
            ));
        }
    }
    let allowed_audiences = &core.settings.registration.audiences;
    let audiences = strings(object, "audiences")?;
    if let Some(bad) = audiences
        .iter()
        .flatten()
        .find(|a| !allowed_audiences.contains(a))
    {
        return Err(metadata_error(
            "audiences",
            &format!("`{bad}` is not an API registered clients may use"),
        ));
    }
    let (audiences, api_scopes) = match audiences {
        Some(audiences) => {
            let scopes = api_scopes(core, &audiences).await?.1;
            (audiences, scopes)
        }
        None => api_scopes(core, allowed_audiences).await?,
    };
    let scope = string(object, "scope")?.unwrap_or(api_scopes);
    let keys = match object.get("jwks") {
        None | Some(Value::Null) => None,
        Some(jwks @ Value::Object(_)) => Some(KeysInput::Jwks(jwks.to_string())),
        Some(_) => return Err(metadata_error("jwks", "must be a JWK Set object")),
    };
    // RFC 7591 §2: the default method is client_secret_basic.
    let auth_method = match string(object, "token_endpoint_auth_method")? {
        Some(method) => method
            .parse::<AuthMethod>()
            .map_err(|e| metadata_error("token_endpoint_auth_method", &e))?,
        None if keys.is_some() => AuthMethod::PrivateKeyJwt,
        None => AuthMethod::Secret,
    };
    let grant_types =
        strings(object, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    let change = MetadataChange {
        client_name: string(object, "client_name")?.or(Some(UNNAMED.into())),
        grant_types: Some(grant_types),
        // Checked only when sent: the default ("code") says nothing about a client that has
        // no authorization code grant.
        response_types: strings(object, "response_types")?,
        redirect_uris: Some(strings(object, "redirect_uris")?.unwrap_or_default()),
        scope: Some(scope),
        audiences: Some(audiences),
        allowed_origins: Some(strings(object, "allowed_origins")?.unwrap_or_default()),
        post_logout_redirect_uris: Some(
            strings(object, "post_logout_redirect_uris")?.unwrap_or_default(),
        ),
        backchannel_logout_uri: Some(String::new()),
        require_par: Some(boolean(object, "require_pushed_authorization_requests")?),
        first_party: Some(false),
        auth_method: Some(auth_method),
        keys,
    };
    let secret = client_metadata::apply(
        client,
        change,
        core.store.as_ref(),
        &core.server_keys.hasher,
    )
    .await
    .map_err(registration_error)?;
    let with_initial_token = client
        .registration
        .as_ref()
        .is_some_and(|r| r.with_initial_token);
    for grant in &client.grant_types {
        let refused = match grant {
            GrantType::Password => Some("the password grant hands the client the user's password"),
            GrantType::ClientCredentials if !with_initial_token => {
                Some("client_credentials needs registration with an initial access token")
            }
            // A device code shown by an anonymous app is a phishing kit (RFC 8628 §5.4);
            // implicit hands tokens to the front channel (RFC 9700 §2.1.2).
            GrantType::DeviceCode | GrantType::Implicit => {
                Some("it is available only to clients an administrator creates")
            }
            _ => None,
        };
        if let Some(why) = refused {
            return Err(metadata_error(
                "grant_types",
                &format!(
                    "a registered client may not use the {grant} grant: {why}; an administrator can create such a client with valet client create"
                ),
            ));
        }
    }
    Ok(secret)
}

/// Those of `audiences` that name an API, and every scope they define: what a client that
/// registers no `scope` may ask for (the OpenID scopes are open to every client signing users
/// in anyway).
async fn api_scopes(
    core: &Core,
    audiences: &[String],
) -> Result<(Vec<String>, String), OAuthError> {
    let mut existing = Vec::new();
    let mut scopes = Vec::new();
    for audience in audiences {
        if let Some(api) = core.directory.api(audience).await? {
            existing.push(audience.clone());
            scopes.extend(api.scopes.iter().map(|s| s.to_string()));
        }
    }
    Ok((existing, scopes.join(" ")))
}

fn registration_error(error: MetadataError) -> OAuthError {
    match error {
        MetadataError::Invalid {
            field,
            problem,
            message,
        } => {
            let code = match problem {
                Problem::RedirectUri => ErrorCode::InvalidRedirectUri,
                Problem::Metadata | Problem::UnknownApi => ErrorCode::InvalidClientMetadata,
            };
            OAuthError::new(code, format!("{}: {message}", field.member()))
        }
        MetadataError::Store(e) => e.into(),
        MetadataError::Random => OAuthError::server_error("the OS random source failed"),
    }
}

fn metadata_error(member: &str, message: &str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidClientMetadata,
        format!("{member}: {message}"),
    )
}

/// A string member; `null` counts as absent (RFC 7592 §2.2).
fn string(object: &Map<String, Value>, member: &str) -> Result<Option<String>, OAuthError> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(metadata_error(member, "must be a string")),
    }
}

/// An array-of-strings member, duplicates dropped, at most [`MAX_LIST`] entries of at most
/// [`MAX_MEMBER_BYTES`]; `null` counts as absent.
fn strings(object: &Map<String, Value>, member: &str) -> Result<Option<Vec<String>>, OAuthError> {
    let items = match object.get(member) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(metadata_error(member, "must be an array of strings")),
    };
    let mut values: Vec<String> = Vec::new();
    for item in items {
        let value = item
            .as_str()
            .ok_or_else(|| metadata_error(member, "must be an array of strings"))?;
        if value.len() > MAX_MEMBER_BYTES {
            return Err(metadata_error(
                member,
                &format!("entries must be at most {MAX_MEMBER_BYTES} bytes"),
            ));
        }
        if !values.iter().any(|v| v == value) {
            values.push(value.to_owned());
        }
    }
    if values.len() > MAX_LIST {
        return Err(metadata_error(
            member,
            &format!("at most {MAX_LIST} entries"),
        ));
    }
    Ok(Some(values))
}

fn boolean(object: &Map<String, Value>, member: &str) -> Result<bool, OAuthError> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(metadata_error(member, "must be true or false")),
    }
}
