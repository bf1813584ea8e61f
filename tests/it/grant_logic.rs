//! Logic tests without HTTP (ARCHITECTURE §6): every grant through `token::parse` and
//! `token::exchange` with a `TokenContext`, and the failures of `authorize::validate`, on a
//! `Core` from `app::build_core` over a fresh SQLite file or PostgreSQL database. Records are
//! written through `core.store` as the CLI writes them; time moves by advancing the clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tempfile::TempDir;
use valet::clock::Clock;
use valet::config::Config;
use valet::core::Core;
use valet::domain::{GrantType, ScopeSet};
use valet::oauth::authorize::{self, AuthorizationRequest, AuthorizeRejection, Rejection};
use valet::oauth::introspect::active_access_token;
use valet::oauth::issue::{TokenContext, TokenResponse};
use valet::oauth::response_mode::{Delivery, deliver};
use valet::oauth::token;
use valet::oauth::{ErrorCode, OAuthError, Params};
use valet::store::{Api, Client, Session, User};
use valet::tokens::access::{self, AccessClaims};

use crate::backend_tests;
use crate::harness::postgres::{self, DatabaseGuard};
use crate::harness::{Backend, CONTACTS, test_config};

// ---------------------------------------------------------------------------------------------
// A Core for tests

/// A protocol core over a fresh store; the database and its directory live as long as it.
pub struct TestCore {
    pub core: Core,
    _db: DatabaseGuard,
    _dir: TempDir,
}

impl std::ops::Deref for TestCore {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

pub async fn test_core(backend: Backend) -> TestCore {
    test_core_with(backend, |_| {}).await
}

/// `test_config()` changed by `adjust`, on the system clock (which tests `advance`).
pub async fn test_core_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestCore {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = match backend {
        Backend::Sqlite => DatabaseGuard::none(format!(
            "sqlite://{}",
            dir.path().join("valet.db").display()
        )),
        Backend::Postgres => postgres::fresh_database().await,
    };
    let mut config = test_config();
    config.database_url = db.url.clone();
    adjust(&mut config);
    let settings = config.validate().expect("valid test config");
    let core = valet::app::build_core(settings, Clock::system())
        .await
        .expect("core builds");
    TestCore {
        core,
        _db: db,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------------
// Records, written as the CLI writes them

const PASSWORD: &str = "correct horse battery";
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const WEB_CALLBACK: &str = "https://app.example.com/cb";
const SPA_CALLBACK: &str = "https://spa.example.com/cb";
const BILLING: &str = "https://billing.example.com";

async fn insert_api(core: &Core, identifier: &str, scopes: &str) {
    core.store
        .insert_api(&Api {
            identifier: identifier.into(),
            name: identifier.into(),
            scopes: ScopeSet::parse(scopes).unwrap(),
            created_at: core.clock.now(),
        })
        .await
        .unwrap();
}

/// The Contacts API, plus a Billing API no client in these tests may use.
async fn insert_apis(core: &Core) {
    insert_api(
        core,
        CONTACTS,
        "read:contacts create:contacts delete:contacts",
    )
    .await;
    insert_api(core, BILLING, "read:invoices").await;
}

/// A confidential client for the Contacts API (its secret hashed as `valet client create`
/// does; client authentication is HTTP's business, so the secret itself is never used here).
fn confidential(core: &Core, client_id: &str, grants: &[GrantType], scope: &str) -> Client {
    let now = core.clock.now();
    Client {
        client_id: client_id.into(),
        client_name: client_id.into(),
        secret_hash: Some(
            core.server_keys
                .hasher
                .hash(&format!("secret of {client_id}")),
        ),
        grant_types: grants.to_vec(),
        redirect_uris: vec![],
        scope: ScopeSet::parse(scope).unwrap(),
        audiences: vec![CONTACTS.into()],
        allowed_origins: vec![],
        first_party: false,
        logout: Default::default(),
        require_par: false,
        keys: Default::default(),
        registration: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

async fn register(core: &Core, client: Client) -> Client {
    core.store.insert_client(&client).await.unwrap();
    client
}

async fn service_client(core: &Core) -> Client {
    let client = confidential(
        core,
        "service",
        &[GrantType::ClientCredentials],
        "read:contacts create:contacts",
    );
    register(core, client).await
}

async fn password_client(core: &Core) -> Client {
    let grants = [GrantType::Password, GrantType::RefreshToken];
    let client = confidential(
        core,
        "trusted-app",
        &grants,
        "read:contacts create:contacts",
    );
    register(core, client).await
}

async fn web_client(core: &Core) -> Client {
    let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    let client = Client {
        redirect_uris: vec![WEB_CALLBACK.into()],
        ..confidential(
            core,
            "web-app",
            &grants,
            "openid read:contacts create:contacts",
        )
    };
    register(core, client).await
}

/// A public client: no secret, so PKCE is required.
async fn spa_client(core: &Core) -> Client {
    let client = Client {
        secret_hash: None,
        redirect_uris: vec![SPA_CALLBACK.into()],
        ..confidential(
            core,
            "spa",
            &[GrantType::AuthorizationCode],
            "openid read:contacts",
        )
    };
    register(core, client).await
}

/// `alice`, her password hashed with Argon2id as `valet user create` does.
async fn insert_alice(core: &Core) -> User {
    let hash = valet::login::password::hash(&core.settings.password_hash, PASSWORD.into())
        .await
        .unwrap();
    insert_user_with_hash(core, "alice", hash).await
}

async fn insert_user_with_hash(core: &Core, username: &str, password_hash: String) -> User {
    let now = core.clock.now();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.into(),
        email: Some(format!("{username}@example.com")),
        name: None,
        profile: Default::default(),
        password_hash,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    core.store.insert_user(&user).await.unwrap();
    user
}

// ---------------------------------------------------------------------------------------------
// Requests and what they return

fn params(pairs: &[(&str, &str)]) -> Params {
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(encoded.as_bytes()).expect("well-formed parameters")
}

/// A token request from an already authenticated `client`, at the clock's now.
async fn token(
    core: &Core,
    client: &Client,
    pairs: &[(&str, &str)],
) -> Result<TokenResponse, OAuthError> {
    let request = token::parse(&params(pairs), client)?;
    let cx = TokenContext {
        core,
        client,
        now: core.clock.now(),
        end_user_address: Some(PEER),
    };
    token::exchange(&cx, request).await
}

/// The error of a request that must fail with `code`.
#[track_caller]
fn refused(result: Result<TokenResponse, OAuthError>, code: ErrorCode) -> OAuthError {
    let error = result.expect_err("the request must be refused");
    assert_eq!(error.code, code, "{error}");
    error
}

/// The claims of one of our access tokens, checked with the core's keys.
fn claims(core: &Core, access_token: &str) -> AccessClaims {
    access::verify(
        &core.keys.current(),
        access_token,
        core.settings.issuer_str(),
        core.clock.now(),
    )
    .expect("a valid access token")
}

async fn is_active(core: &Core, access_token: &str) -> bool {
    active_access_token(core, access_token, core.clock.now())
        .await
        .unwrap()
        .is_some()
}

fn password_request(password: &str) -> [(&str, &str); 4] {
    [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", password),
        ("audience", CONTACTS),
    ]
}

fn refresh_request(refresh_token: &str) -> [(&str, &str); 2] {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]
}

/// Alice's first refresh token through the password grant (and the client that holds it).
async fn alice_refresh_token(core: &Core) -> (Client, User, String) {
    insert_apis(core).await;
    let client = password_client(core).await;
    let alice = insert_alice(core).await;
    let tokens = token(core, &client, &password_request(PASSWORD))
        .await
        .unwrap();
    let refresh = tokens.refresh_token.expect("a refresh token");
    (client, alice, refresh)
}

/// RFC 7636 §4.1–§4.2 with S256.
struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Pkce {
        challenge: URL_SAFE_NO_PAD.encode(digest),
        verifier,
    }
}

/// An authorization request for `client`'s first redirect URI with state and S256 PKCE.
fn code_request<'a>(client: &'a Client, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", &client.redirect_uris[0]),
        ("scope", "openid read:contacts"),
        ("audience", CONTACTS),
        ("state", "af0ifjsldkj"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

fn code_exchange<'a>(
    client: &'a Client,
    code: &'a str,
    verifier: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &client.redirect_uris[0]),
        ("code_verifier", verifier),
    ]
}

/// Exchange `code` as `client` with `verifier` at the token endpoint's logic.
async fn redeem(
    core: &Core,
    client: &Client,
    code: &str,
    verifier: &str,
) -> Result<TokenResponse, OAuthError> {
    token(core, client, &code_exchange(client, code, verifier)).await
}

async fn validate(
    core: &Core,
    pairs: &[(&str, &str)],
) -> Result<(Arc<Client>, AuthorizationRequest), Rejection> {
    authorize::validate(core, &params(pairs)).await
}

/// A fresh login session for `user`, stored as the login page stores one.
async fn signed_in(core: &Core, user: &User) -> Session {
    let ttl = core.settings.login.session_ttl;
    let hasher = &core.server_keys.hasher;
    let new =
        valet::login::session::start(&core.store, hasher, &user.id, core.clock.now(), ttl, None)
            .await
            .unwrap();
    new.session
}

/// `/authorize` to the end: validate, keep the request pending, load it back as the login
/// page does, and approve it for `user`; the code from the response.
async fn authorization_code(core: &Core, user: &User, pairs: &[(&str, &str)]) -> String {
    let now = core.clock.now();
    let (_, request) = validate(core, pairs).await.expect("a valid request");
    let id = authorize::create_pending(core, &request, now)
        .await
        .unwrap();
    let pending = authorize::load_pending(core, Some(&id), now).await.unwrap();
    let session = signed_in(core, user).await;
    let response = authorize::approve(core, &pending, user, &session, now)
        .await
        .unwrap();
    response
        .params
        .iter()
        .find(|(name, _)| *name == "code")
        .map(|(_, code)| code.clone())
        .unwrap_or_else(|| panic!("no code in {:?}", response.params))
}

/// Alice's code for the web client, with the PKCE pair that goes with it.
async fn web_code(core: &Core) -> (Client, User, Pkce, String) {
    insert_apis(core).await;
    let client = web_client(core).await;
    let alice = insert_alice(core).await;
    let pkce = pkce();
    let code = authorization_code(core, &alice, &code_request(&client, &pkce.challenge)).await;
    (client, alice, pkce, code)
}

/// The redirect a validation error goes back with, as the browser would be sent there.
fn redirect_error(core: &Core, rejection: Rejection) -> url::Url {
    let Rejection::Redirect(error) = rejection else {
        panic!("expected a redirect error, got {rejection:?}");
    };
    match deliver(error.into_response(), core.settings.issuer_str()) {
        Delivery::Redirect(location) => url::Url::parse(&location).unwrap(),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

// ---------------------------------------------------------------------------------------------
// client_credentials (RFC 6749 §4.4; SPEC §6 scope policy)

backend_tests!(
    client_credentials_without_scope_gets_every_scope_the_client_and_api_share,
    client_credentials_narrows_to_the_requested_scope,
    client_credentials_refuses_a_scope_the_client_lacks,
    client_credentials_refuses_an_api_the_client_may_not_use,
    client_credentials_without_audience_or_default_is_invalid_request,
    client_credentials_without_audience_uses_the_default_audience,
);

async fn client_credentials_without_scope_gets_every_scope_the_client_and_api_share(
    backend: Backend,
) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = service_client(&core).await;
    let request = [("grant_type", "client_credentials"), ("audience", CONTACTS)];

    let tokens = token(&core, &client, &request).await.unwrap();

    assert_eq!(tokens.scope, "create:contacts read:contacts");
    assert_eq!(tokens.refresh_token, None);
    let claims = claims(&core, &tokens.access_token);
    assert_eq!(claims.sub, "service");
    assert_eq!(claims.aud, CONTACTS);
    assert_eq!(claims.scope, "create:contacts read:contacts");
    assert_eq!(claims.grant_id(), None);
}

async fn client_credentials_narrows_to_the_requested_scope(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = service_client(&core).await;
    let request = [
        ("grant_type", "client_credentials"),
        ("audience", CONTACTS),
        ("scope", "read:contacts"),
    ];

    let tokens = token(&core, &client, &request).await.unwrap();

    assert_eq!(tokens.scope, "read:contacts");
    assert_eq!(claims(&core, &tokens.access_token).scope, "read:contacts");
}

async fn client_credentials_refuses_a_scope_the_client_lacks(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = service_client(&core).await;
    // The API defines delete:contacts; the client was not given it.
    let request = [
        ("grant_type", "client_credentials"),
        ("audience", CONTACTS),
        ("scope", "read:contacts delete:contacts"),
    ];

    let error = refused(
        token(&core, &client, &request).await,
        ErrorCode::InvalidScope,
    );
    assert!(error.description.contains("delete:contacts"), "{error}");
}

async fn client_credentials_refuses_an_api_the_client_may_not_use(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = service_client(&core).await;

    for audience in [BILLING, "https://nowhere.example.com"] {
        let request = [("grant_type", "client_credentials"), ("audience", audience)];
        refused(
            token(&core, &client, &request).await,
            ErrorCode::InvalidTarget,
        );
    }
}

async fn client_credentials_without_audience_or_default_is_invalid_request(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = service_client(&core).await;

    let error = refused(
        token(&core, &client, &[("grant_type", "client_credentials")]).await,
        ErrorCode::InvalidRequest,
    );
    assert!(error.description.contains("audience"), "{error}");
}

async fn client_credentials_without_audience_uses_the_default_audience(backend: Backend) {
    let core = test_core_with(backend, |c| c.default_audience = Some(CONTACTS.into())).await;
    insert_apis(&core).await;
    let client = service_client(&core).await;

    let tokens = token(&core, &client, &[("grant_type", "client_credentials")])
        .await
        .unwrap();

    assert_eq!(claims(&core, &tokens.access_token).aud, CONTACTS);
}

// ---------------------------------------------------------------------------------------------
// password (RFC 6749 §4.3; SPEC §7 login limiter)

backend_tests!(
    password_grant_with_the_right_password_issues_tokens_for_the_user,
    password_grant_with_a_wrong_password_is_invalid_grant_and_counted,
    password_grant_while_locked_is_refused_even_with_the_right_password,
    password_grant_refuses_a_disabled_user,
    password_grant_upgrades_a_hash_made_with_old_parameters,
);

async fn password_grant_with_the_right_password_issues_tokens_for_the_user(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = password_client(&core).await;
    let alice = insert_alice(&core).await;

    let tokens = token(&core, &client, &password_request(PASSWORD))
        .await
        .unwrap();

    assert_eq!(tokens.scope, "create:contacts read:contacts");
    assert!(tokens.refresh_token.is_some());
    let claims = claims(&core, &tokens.access_token);
    assert_eq!(claims.sub, alice.id);
    assert_eq!(claims.aud, CONTACTS);
    assert_eq!(claims.client_id, "trusted-app");
    let grant = claims.grant_id().expect("a user grant");
    assert_eq!(core.store.grant_revoked(&grant).await.unwrap(), Some(false));
}

async fn password_grant_with_a_wrong_password_is_invalid_grant_and_counted(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = password_client(&core).await;
    insert_alice(&core).await;

    refused(
        token(&core, &client, &password_request("wrong")).await,
        ErrorCode::InvalidGrant,
    );

    assert_eq!(core.metrics.login_failures.get(), 1);
    // The store counted one failure for the username and one for the address.
    for key in ["user:alice", "addr:203.0.113.7"] {
        assert_eq!(core.store.login_failures(key).await.unwrap(), 1, "{key}");
    }
}

async fn password_grant_while_locked_is_refused_even_with_the_right_password(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = password_client(&core).await;
    insert_alice(&core).await;
    let free = core.settings.login.user_free_failures;

    // The failures past the free ones lock the username (for 1 s after the first).
    for _ in 0..=free {
        refused(
            token(&core, &client, &password_request("wrong")).await,
            ErrorCode::InvalidGrant,
        );
    }
    let error = refused(
        token(&core, &client, &password_request(PASSWORD)).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("too many"), "{error}");
    assert_eq!(core.metrics.limiter_refusals.get(), 1);

    core.clock.advance(Duration::from_secs(2));
    token(&core, &client, &password_request(PASSWORD))
        .await
        .expect("the lock has passed");
}

async fn password_grant_refuses_a_disabled_user(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = password_client(&core).await;
    insert_alice(&core).await;
    assert!(
        core.store
            .set_user_disabled("alice", true, core.clock.now())
            .await
            .unwrap()
    );

    let error = refused(
        token(&core, &client, &password_request(PASSWORD)).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("disabled"), "{error}");
}

async fn password_grant_upgrades_a_hash_made_with_old_parameters(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = password_client(&core).await;
    let mut old_parameters = core.settings.password_hash;
    old_parameters.memory_kib *= 2;
    let old_hash = valet::login::password::hash(&old_parameters, PASSWORD.into())
        .await
        .unwrap();
    insert_user_with_hash(&core, "alice", old_hash.clone()).await;

    token(&core, &client, &password_request(PASSWORD))
        .await
        .unwrap();

    let stored = core.store.user_by_username("alice").await.unwrap().unwrap();
    assert_ne!(stored.password_hash, old_hash);
    let current = format!("m={},", core.settings.password_hash.memory_kib);
    assert!(
        stored.password_hash.contains(&current),
        "{}",
        stored.password_hash
    );
}

// ---------------------------------------------------------------------------------------------
// authorization_code (RFC 6749 §4.1; RFC 7636 PKCE)

backend_tests!(
    code_with_the_right_verifier_gives_tokens_and_an_id_token,
    code_with_a_wrong_verifier_is_invalid_grant,
    code_without_the_verifier_is_invalid_grant,
    code_with_another_redirect_uri_is_invalid_grant,
    code_of_another_client_is_invalid_grant_and_stays_usable,
    used_code_presented_by_another_client_revokes_nothing,
    verifier_for_a_code_without_a_challenge_is_invalid_grant,
    replayed_code_is_invalid_grant_and_revokes_its_grant,
    expired_code_is_invalid_grant,
    public_client_exchanges_its_code_with_pkce,
    pending_request_can_be_approved_only_once,
);

async fn code_with_the_right_verifier_gives_tokens_and_an_id_token(backend: Backend) {
    let core = test_core(backend).await;
    let (client, alice, pkce, code) = web_code(&core).await;

    let tokens = redeem(&core, &client, &code, &pkce.verifier).await.unwrap();

    assert_eq!(tokens.scope, "openid read:contacts");
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.id_token.is_some());
    let claims = claims(&core, &tokens.access_token);
    assert_eq!(claims.sub, alice.id);
    assert_eq!(claims.aud, CONTACTS);
    assert_eq!(claims.client_id, "web-app");
}

async fn code_with_a_wrong_verifier_is_invalid_grant(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, _, code) = web_code(&core).await;
    let other = pkce();

    let error = refused(
        redeem(&core, &client, &code, &other.verifier).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("code_verifier"), "{error}");
}

async fn code_without_the_verifier_is_invalid_grant(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, _, code) = web_code(&core).await;
    let mut request = code_exchange(&client, &code, "");
    request.retain(|(name, _)| *name != "code_verifier");

    let error = refused(
        token(&core, &client, &request).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("code_verifier"), "{error}");
}

async fn code_with_another_redirect_uri_is_invalid_grant(backend: Backend) {
    let core = test_core(backend).await;
    let (client, alice, pkce, code) = web_code(&core).await;
    let mut elsewhere = code_exchange(&client, &code, &pkce.verifier);
    elsewhere[2] = ("redirect_uri", "https://app.example.com/other");
    refused(
        token(&core, &client, &elsewhere).await,
        ErrorCode::InvalidGrant,
    );

    // Sent to /authorize, so it must be repeated (RFC 6749 §4.1.3).
    let code = authorization_code(&core, &alice, &code_request(&client, &pkce.challenge)).await;
    let mut omitted = code_exchange(&client, &code, &pkce.verifier);
    omitted.retain(|(name, _)| *name != "redirect_uri");
    let error = refused(
        token(&core, &client, &omitted).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("redirect_uri"), "{error}");
}

async fn code_of_another_client_is_invalid_grant_and_stays_usable(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, pkce, code) = web_code(&core).await;
    let grants = [GrantType::AuthorizationCode];
    let thief = Client {
        redirect_uris: vec![WEB_CALLBACK.into()],
        ..confidential(&core, "thief", &grants, "openid read:contacts")
    };
    let thief = register(&core, thief).await;

    refused(
        redeem(&core, &thief, &code, &pkce.verifier).await,
        ErrorCode::InvalidGrant,
    );
    redeem(&core, &client, &code, &pkce.verifier)
        .await
        .expect("the code's own client can still redeem it");
}

/// A leaked, already used code in another client's hands must not end the real client's
/// grant: only the code's own client can replay it (RFC 6749 §4.1.3 checks the client first).
async fn used_code_presented_by_another_client_revokes_nothing(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, pkce, code) = web_code(&core).await;
    let tokens = redeem(&core, &client, &code, &pkce.verifier).await.unwrap();
    let grants = [GrantType::AuthorizationCode];
    let other = Client {
        redirect_uris: vec![WEB_CALLBACK.into()],
        ..confidential(&core, "other", &grants, "openid read:contacts")
    };
    let other = register(&core, other).await;

    refused(
        redeem(&core, &other, &code, &pkce.verifier).await,
        ErrorCode::InvalidGrant,
    );
    assert!(
        is_active(&core, &tokens.access_token).await,
        "another client's attempt revoked the real client's grant"
    );
}

/// PKCE downgrade (RFC 9700 §4.8.2): a code issued without a challenge must not be redeemed
/// with a verifier, or an attacker who stripped the challenge from the request could pass.
async fn verifier_for_a_code_without_a_challenge_is_invalid_grant(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = web_client(&core).await;
    let alice = insert_alice(&core).await;
    let pkce = pkce();
    let without_pkce: Vec<(&str, &str)> = code_request(&client, &pkce.challenge)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("code_challenge"))
        .collect();
    let code = authorization_code(&core, &alice, &without_pkce).await;

    let error = refused(
        redeem(&core, &client, &code, &pkce.verifier).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("verifier"), "{error}");
}

async fn replayed_code_is_invalid_grant_and_revokes_its_grant(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, pkce, code) = web_code(&core).await;
    let exchange = code_exchange(&client, &code, &pkce.verifier);
    let first = token(&core, &client, &exchange).await.unwrap();
    let grant = claims(&core, &first.access_token)
        .grant_id()
        .unwrap()
        .to_owned();
    assert!(is_active(&core, &first.access_token).await);

    let error = refused(
        token(&core, &client, &exchange).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("already used"), "{error}");

    assert_eq!(core.store.grant_revoked(&grant).await.unwrap(), Some(true));
    assert!(!is_active(&core, &first.access_token).await);
    let refresh = first.refresh_token.unwrap();
    refused(
        token(&core, &client, &refresh_request(&refresh)).await,
        ErrorCode::InvalidGrant,
    );
}

async fn expired_code_is_invalid_grant(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, pkce, code) = web_code(&core).await;

    core.clock
        .advance(core.settings.tokens.code_ttl + Duration::from_secs(1));

    let error = refused(
        redeem(&core, &client, &code, &pkce.verifier).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("expired"), "{error}");
}

async fn public_client_exchanges_its_code_with_pkce(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let spa = spa_client(&core).await;
    let alice = insert_alice(&core).await;
    let pkce = pkce();
    let code = authorization_code(&core, &alice, &code_request(&spa, &pkce.challenge)).await;

    let tokens = redeem(&core, &spa, &code, &pkce.verifier).await.unwrap();

    assert_eq!(claims(&core, &tokens.access_token).sub, alice.id);
    assert_eq!(
        tokens.refresh_token, None,
        "the client has no refresh_token grant"
    );
}

async fn pending_request_can_be_approved_only_once(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = web_client(&core).await;
    let alice = insert_alice(&core).await;
    let pkce = pkce();
    let now = core.clock.now();
    let (_, request) = validate(&core, &code_request(&client, &pkce.challenge))
        .await
        .unwrap();
    let id = authorize::create_pending(&core, &request, now)
        .await
        .unwrap();
    let pending = authorize::load_pending(&core, Some(&id), now)
        .await
        .unwrap();
    let session = signed_in(&core, &alice).await;

    authorize::approve(&core, &pending, &alice, &session, now)
        .await
        .unwrap();
    let again = authorize::approve(&core, &pending, &alice, &session, now)
        .await
        .unwrap_err();

    assert!(
        matches!(again, AuthorizeRejection::RequestGone),
        "{again:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// refresh_token (RFC 6749 §6; RFC 9700 §4.14.2 rotation)

backend_tests!(
    refresh_rotates_to_a_new_token_that_works_in_turn,
    reused_refresh_token_is_invalid_grant_and_revokes_the_family,
    refresh_may_narrow_the_access_token_scope,
    refresh_with_a_wider_scope_is_invalid_scope,
    refresh_token_expires_when_idle,
    parallel_refreshes_with_one_token_have_one_winner,
);

async fn refresh_rotates_to_a_new_token_that_works_in_turn(backend: Backend) {
    let core = test_core(backend).await;
    let (client, alice, first) = alice_refresh_token(&core).await;

    let second = token(&core, &client, &refresh_request(&first))
        .await
        .unwrap();
    let second_refresh = second.refresh_token.unwrap();
    assert_ne!(second_refresh, first);
    assert_eq!(second.scope, "create:contacts read:contacts");
    assert_eq!(claims(&core, &second.access_token).sub, alice.id);

    let third = token(&core, &client, &refresh_request(&second_refresh))
        .await
        .unwrap();
    assert_ne!(third.refresh_token.unwrap(), second_refresh);
}

async fn reused_refresh_token_is_invalid_grant_and_revokes_the_family(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, first) = alice_refresh_token(&core).await;
    let second = token(&core, &client, &refresh_request(&first))
        .await
        .unwrap();
    let second_refresh = second.refresh_token.unwrap();

    let error = refused(
        token(&core, &client, &refresh_request(&first)).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("already used"), "{error}");

    // The family's live token and the access tokens of the grant die with it.
    refused(
        token(&core, &client, &refresh_request(&second_refresh)).await,
        ErrorCode::InvalidGrant,
    );
    assert!(!is_active(&core, &second.access_token).await);
    let grant = claims(&core, &second.access_token)
        .grant_id()
        .unwrap()
        .to_owned();
    assert_eq!(core.store.grant_revoked(&grant).await.unwrap(), Some(true));
}

async fn refresh_may_narrow_the_access_token_scope(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, first) = alice_refresh_token(&core).await;
    let mut narrower = refresh_request(&first).to_vec();
    narrower.push(("scope", "read:contacts"));

    let narrowed = token(&core, &client, &narrower).await.unwrap();
    assert_eq!(narrowed.scope, "read:contacts");
    assert_eq!(claims(&core, &narrowed.access_token).scope, "read:contacts");

    // The successor keeps the scope of the grant (RFC 6749 §6).
    let next = narrowed.refresh_token.unwrap();
    let full = token(&core, &client, &refresh_request(&next))
        .await
        .unwrap();
    assert_eq!(full.scope, "create:contacts read:contacts");
}

async fn refresh_with_a_wider_scope_is_invalid_scope(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, first) = alice_refresh_token(&core).await;
    let mut wider = refresh_request(&first).to_vec();
    wider.push(("scope", "read:contacts delete:contacts"));

    let error = refused(token(&core, &client, &wider).await, ErrorCode::InvalidScope);
    assert!(error.description.contains("delete:contacts"), "{error}");
    token(&core, &client, &refresh_request(&first))
        .await
        .expect("a refused widening does not use the token up");
}

async fn refresh_token_expires_when_idle(backend: Backend) {
    let idle = Duration::from_secs(60);
    let core = test_core_with(backend, |c| {
        c.tokens.refresh_idle_ttl = valet::config::ConfigDuration(idle);
    })
    .await;
    let (client, _, first) = alice_refresh_token(&core).await;

    // Used within its idle time, a token is replaced by one with a fresh idle time...
    core.clock.advance(idle / 2);
    let second = token(&core, &client, &refresh_request(&first))
        .await
        .unwrap();
    let second = second.refresh_token.unwrap();

    // ...which runs out if that one is left unused for longer.
    core.clock.advance(idle + Duration::from_secs(1));
    let error = refused(
        token(&core, &client, &refresh_request(&second)).await,
        ErrorCode::InvalidGrant,
    );
    assert!(error.description.contains("expired"), "{error}");
}

async fn parallel_refreshes_with_one_token_have_one_winner(backend: Backend) {
    let core = test_core(backend).await;
    let (client, _, first) = alice_refresh_token(&core).await;

    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (core, client, first) = (core.core.clone(), client.clone(), first.clone());
            tokio::spawn(async move { token(&core, &client, &refresh_request(&first)).await })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(tokens) => winners.push(tokens),
            Err(error) => assert_eq!(error.code, ErrorCode::InvalidGrant, "{error}"),
        }
    }

    assert_eq!(winners.len(), 1, "exactly one refresh rotates the token");
    // The others were reuse: the family is revoked, the winner's new token with it.
    let won = winners.pop().unwrap().refresh_token.unwrap();
    refused(
        token(&core, &client, &refresh_request(&won)).await,
        ErrorCode::InvalidGrant,
    );
}

// ---------------------------------------------------------------------------------------------
// authorize::validate (RFC 6749 §4.1.2.1: page errors before the redirect URI is known good,
// redirect errors after)

backend_tests!(
    authorize_for_an_unknown_client_is_a_page_error,
    authorize_to_an_unregistered_redirect_uri_is_a_page_error,
    authorize_with_an_unsupported_response_type_redirects_the_error_with_state,
    authorize_with_a_scope_the_client_lacks_redirects_invalid_scope,
    authorize_for_a_public_client_without_pkce_redirects_invalid_request,
);

async fn authorize_for_an_unknown_client_is_a_page_error(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = web_client(&core).await;
    let challenge = pkce().challenge;
    let mut request = code_request(&client, &challenge);
    request[1] = ("client_id", "nobody");

    match validate(&core, &request).await {
        Err(Rejection::Page(AuthorizeRejection::UnknownClient { client_id })) => {
            assert_eq!(client_id, "nobody");
        }
        other => panic!("expected a page error, got {other:?}"),
    }
}

async fn authorize_to_an_unregistered_redirect_uri_is_a_page_error(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = web_client(&core).await;
    let challenge = pkce().challenge;
    let mut request = code_request(&client, &challenge);
    request[2] = ("redirect_uri", "https://attacker.example.net/cb");

    match validate(&core, &request).await {
        Err(Rejection::Page(AuthorizeRejection::RedirectMismatch { mismatch, .. })) => {
            let detail = mismatch.to_string();
            assert!(detail.contains("attacker.example.net"), "{detail}");
        }
        other => panic!("expected a page error, got {other:?}"),
    }
}

async fn authorize_with_an_unsupported_response_type_redirects_the_error_with_state(
    backend: Backend,
) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = web_client(&core).await;
    let challenge = pkce().challenge;
    let mut request = code_request(&client, &challenge);
    request[0] = ("response_type", "code code");

    let rejection = validate(&core, &request).await.unwrap_err();

    let location = redirect_error(&core, rejection);
    assert!(location.as_str().starts_with(WEB_CALLBACK), "{location}");
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(query(&location, "state").as_deref(), Some("af0ifjsldkj"));
    assert_eq!(
        query(&location, "iss").as_deref(),
        Some(core.settings.issuer_str())
    );
}

async fn authorize_with_a_scope_the_client_lacks_redirects_invalid_scope(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let client = web_client(&core).await;
    let challenge = pkce().challenge;
    let mut request = code_request(&client, &challenge);
    request[3] = ("scope", "openid delete:contacts");

    let rejection = validate(&core, &request).await.unwrap_err();

    let location = redirect_error(&core, rejection);
    assert!(location.as_str().starts_with(WEB_CALLBACK), "{location}");
    assert_eq!(query(&location, "error").as_deref(), Some("invalid_scope"));
    assert_eq!(query(&location, "state").as_deref(), Some("af0ifjsldkj"));
}

async fn authorize_for_a_public_client_without_pkce_redirects_invalid_request(backend: Backend) {
    let core = test_core(backend).await;
    insert_apis(&core).await;
    let spa = spa_client(&core).await;
    let mut request = code_request(&spa, "");
    request.retain(|(name, _)| !name.starts_with("code_challenge"));

    let rejection = validate(&core, &request).await.unwrap_err();

    let location = redirect_error(&core, rejection);
    assert!(location.as_str().starts_with(SPA_CALLBACK), "{location}");
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query(&location, "state").as_deref(), Some("af0ifjsldkj"));
    let description = query(&location, "error_description").unwrap();
    assert!(description.contains("PKCE"), "{description}");
}
