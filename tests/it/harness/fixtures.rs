//! One of each fixture the spec modules share: the records a test starts from, and the
//! requests and checks several modules make.
//!
//! Records are written through the store, built the way the CLI builds them (`src/cli/`): a
//! client secret of 256 random bits kept only as its keyed hash, a password as Argon2id. No
//! `valet` process runs for them (each would connect and migrate the database again); only
//! the CLI's own tests, and tests that assert what the CLI prints, run the binary.

use serde_json::{Value, json};
use valet::core::Core;
use valet::crypto::SecretHash;
use valet::domain::{GrantId, GrantType, ScopeSet, SigningAlg, UnixTime};
use valet::store::{Api, AuthorizationCode, ClaimEdit, Client, User};

use super::flow::{Pkce, WebClient};
use super::{CONTACTS, TestApp, test_config};

/// The redirect URI of the tests' web clients.
pub const CALLBACK: &str = "https://app.example.com/callback";
/// The password of every fixture user.
pub const PASSWORD: &str = "correct horse battery";
/// The `state` that [`code_params`] sends and the redirect must echo.
pub const STATE: &str = "xyz-state";

// ---------------------------------------------------------------------------------------
// Records, written through the store

/// Register an API, as `valet api create` does.
pub async fn create_api(core: &Core, identifier: &str, name: &str, scope: &str) {
    let api = Api {
        identifier: identifier.to_owned(),
        name: name.to_owned(),
        scopes: ScopeSet::parse(scope).expect("API scopes"),
        created_at: core.clock.now(),
    };
    core.store.insert_api(&api).await.expect("insert the API");
}

/// The Contacts API ([`CONTACTS`]) with its three scopes.
pub async fn create_contacts_api(core: &Core) {
    create_api(
        core,
        CONTACTS,
        "Contacts",
        "read:contacts create:contacts delete:contacts",
    )
    .await;
}

/// A user with [`PASSWORD`], as `valet user create` makes one; returns its id (the `sub` of
/// its tokens).
pub async fn create_user(core: &Core, username: &str) -> String {
    insert_user(core, username, None, None).await
}

/// alice with an email address and a name, for the OpenID Connect claims; returns her id.
pub async fn create_alice(core: &Core) -> String {
    insert_user(
        core,
        "alice",
        Some("alice@example.com"),
        Some("Alice Liddell"),
    )
    .await
}

async fn insert_user(
    core: &Core,
    username: &str,
    email: Option<&str>,
    name: Option<&str>,
) -> String {
    // The harness's cheap Argon2 parameters whatever the server's are, as the harness's CLI
    // always hashed: a test that needs the server's own parameters sets the hash itself.
    let password_hash = valet::login::password::hash(&test_password_hash(), PASSWORD.to_owned())
        .await
        .expect("hash the password");
    let now = core.clock.now();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
        email: email.map(str::to_owned),
        name: name.map(str::to_owned),
        profile: Default::default(),
        password_hash,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    core.store
        .insert_user(&user)
        .await
        .expect("insert the user");
    user.id
}

/// A client to register, as `valet client create` would. Start from [`NewClient::web`] or
/// [`NewClient::confidential`]; every client may ask for the Contacts API unless told not to.
#[derive(Debug, Clone)]
pub struct NewClient {
    name: String,
    grant_types: Vec<GrantType>,
    redirect_uris: Vec<String>,
    scope: String,
    audiences: Vec<String>,
    allowed_origins: Vec<String>,
    public: bool,
    first_party: bool,
    logout: valet::store::ClientLogout,
    require_par: bool,
    keys: valet::store::ClientKeys,
}

impl NewClient {
    /// "Contacts Web": a confidential client of the authorization_code grant (the CLI's
    /// default) that redirects to `redirect_uri`.
    pub fn web(redirect_uri: &str, scope: &str) -> Self {
        Self::confidential("Contacts Web", &[GrantType::AuthorizationCode], scope)
            .redirect_uri(redirect_uri)
    }

    /// A confidential client of `grants`, with no redirect URI.
    pub fn confidential(name: &str, grants: &[GrantType], scope: &str) -> Self {
        Self {
            name: name.to_owned(),
            grant_types: grants.to_vec(),
            redirect_uris: Vec::new(),
            scope: scope.to_owned(),
            audiences: vec![CONTACTS.to_owned()],
            allowed_origins: Vec::new(),
            public: false,
            first_party: false,
            logout: Default::default(),
            require_par: false,
            keys: Default::default(),
        }
    }

    /// A URI the end-session endpoint may send the browser back to.
    pub fn post_logout_redirect_uri(mut self, uri: &str) -> Self {
        self.logout.post_logout_redirect_uris.push(uri.to_owned());
        self
    }

    /// Must push its authorization requests (RFC 9126 §6).
    pub fn require_par(mut self) -> Self {
        self.require_par = true;
        self
    }

    /// Where logout tokens are posted (Back-Channel Logout).
    pub fn backchannel_logout_uri(mut self, uri: &str) -> Self {
        self.logout.backchannel_logout_uri = Some(uri.to_owned());
        self
    }

    /// No secret: authenticates with its client_id alone and must use PKCE.
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }

    /// Its users are never asked for consent.
    pub fn first_party(mut self) -> Self {
        self.first_party = true;
        self
    }

    /// These grant types instead of the ones it has.
    pub fn grants(mut self, grants: &[GrantType]) -> Self {
        self.grant_types = grants.to_vec();
        self
    }

    /// One more registered redirect URI.
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    /// A browser origin allowed to call `/token` and `/revoke` (CORS).
    pub fn allowed_origin(mut self, origin: &str) -> Self {
        self.allowed_origins.push(origin.to_owned());
        self
    }

    /// May also ask for the API `identifier`.
    pub fn audience(mut self, identifier: &str) -> Self {
        self.audiences.push(identifier.to_owned());
        self
    }

    /// May ask for no API at all.
    pub fn without_audience(mut self) -> Self {
        self.audiences.clear();
        self
    }

    /// Authenticates with `private_key_jwt`, its keys this JWK Set (JSON text): no secret.
    pub fn jwks(mut self, text: &str) -> Self {
        self.keys = valet::store::ClientKeys {
            jwks: Some(text.to_owned()),
            jwks_uri: None,
        };
        self
    }

    /// Authenticates with `private_key_jwt`, its keys fetched from `uri`: no secret.
    pub fn jwks_uri(mut self, uri: &str) -> Self {
        self.keys = valet::store::ClientKeys {
            jwks: None,
            jwks_uri: Some(uri.to_owned()),
        };
        self
    }
}

/// A new client id: 24 letters and digits, as the CLI makes them.
fn new_client_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// Insert `new`; returns its id and, for a confidential client, the secret it was given.
async fn register(core: &Core, new: &NewClient) -> (String, Option<String>) {
    let secret = (!new.public && !new.keys.is_set())
        .then(|| valet::crypto::random_token().expect("random secret"));
    let now = core.clock.now();
    let client = Client {
        client_id: new_client_id(),
        client_name: new.name.clone(),
        secret_hash: secret.as_deref().map(|s| core.server_keys.hasher.hash(s)),
        grant_types: new.grant_types.clone(),
        redirect_uris: new.redirect_uris.clone(),
        scope: ScopeSet::parse(&new.scope).expect("client scope"),
        audiences: new.audiences.clone(),
        allowed_origins: new.allowed_origins.clone(),
        first_party: new.first_party,
        logout: new.logout.clone(),
        require_par: new.require_par,
        keys: new.keys.clone(),
        registration: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    };
    core.store
        .insert_client(&client)
        .await
        .expect("insert the client");
    (client.client_id, secret)
}

/// Register a client with a redirect URI; the [`WebClient`] redirects to the first one.
pub async fn create_web_client(core: &Core, new: NewClient) -> WebClient {
    let redirect_uri = new
        .redirect_uris
        .first()
        .expect("a web client has a redirect URI")
        .clone();
    let (client_id, secret) = register(core, &new).await;
    WebClient {
        client_id,
        secret,
        redirect_uri,
    }
}

/// Register a confidential client; its credentials.
pub async fn create_confidential_client(core: &Core, new: NewClient) -> Creds {
    let (id, secret) = register(core, &new).await;
    Creds {
        id,
        secret: secret.expect("a confidential client has a secret"),
    }
}

/// Register a `private_key_jwt` client (one made with [`NewClient::jwks`]); its id.
pub async fn create_private_key_jwt_client(core: &Core, new: NewClient) -> String {
    assert!(new.keys.is_set(), "a private_key_jwt client has keys");
    register(core, &new).await.0
}

/// A confidential client_credentials client for the Contacts API.
pub async fn create_service_client(core: &Core, scope: &str) -> Creds {
    let service = NewClient::confidential("service", &[GrantType::ClientCredentials], scope);
    create_confidential_client(core, service).await
}

/// As `valet keys rotate --alg`: a new current key, the old one retired; returns the new
/// kid. Servers sign with it from their next key reload.
pub async fn rotate_signing_key(core: &Core, alg: SigningAlg) -> String {
    let sealer = &core.server_keys.sealer;
    let key = valet::tokens::keys::rotate(&core.store, sealer, alg, core.clock.now(), None).await;
    key.expect("rotate the signing key").kid
}

/// A confidential client's credentials.
#[derive(Debug, Clone)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

impl Creds {
    /// For HTTP Basic.
    pub fn basic(&self) -> (&str, &str) {
        (&self.id, &self.secret)
    }
}

impl WebClient {
    /// The credentials of a confidential web client.
    pub fn creds(&self) -> Creds {
        Creds {
            id: self.client_id.clone(),
            secret: self
                .secret
                .clone()
                .expect("a confidential client has a secret"),
        }
    }
}

impl TestApp {
    pub async fn create_contacts_api(&self) {
        create_contacts_api(&self.state).await;
    }

    pub async fn create_api(&self, identifier: &str, name: &str, scope: &str) {
        create_api(&self.state, identifier, name, scope).await;
    }

    /// See [`create_user`].
    pub async fn create_user(&self, username: &str) -> String {
        create_user(&self.state, username).await
    }

    /// See [`create_alice`].
    pub async fn create_alice(&self) -> String {
        create_alice(&self.state).await
    }

    pub async fn create_web_client(&self, new: NewClient) -> WebClient {
        create_web_client(&self.state, new).await
    }

    pub async fn create_confidential_client(&self, new: NewClient) -> Creds {
        create_confidential_client(&self.state, new).await
    }

    pub async fn create_private_key_jwt_client(&self, new: NewClient) -> String {
        create_private_key_jwt_client(&self.state, new).await
    }

    pub async fn create_service_client(&self, scope: &str) -> Creds {
        create_service_client(&self.state, scope).await
    }

    /// A confidential client allowed the password and refresh_token grants, with the scopes
    /// read:contacts and create:contacts.
    pub async fn create_password_client(&self) -> Creds {
        let grants = [GrantType::Password, GrantType::RefreshToken];
        let client =
            NewClient::confidential("first-party app", &grants, "read:contacts create:contacts");
        self.create_confidential_client(client).await
    }

    /// A public client of the code flow that may also refresh.
    pub async fn create_public_code_client(&self) -> WebClient {
        let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
        let client = NewClient::web(CALLBACK, "read:contacts create:contacts");
        self.create_web_client(client.public().grants(&grants))
            .await
    }

    /// `username` as the store has them.
    pub async fn stored_user(&self, username: &str) -> User {
        let user = self.state.store.user_by_username(username).await;
        user.expect("read the user").expect("the user exists")
    }

    /// The id of `username`, the `sub` of their tokens.
    pub async fn user_id(&self, username: &str) -> String {
        self.stored_user(username).await.id
    }

    /// As `valet user update`: apply `edits` to `username`'s claims; the user as stored now.
    pub async fn update_claims(&self, username: &str, edits: &[ClaimEdit]) -> User {
        let store = &self.state.store;
        let updated = store.update_user_claims(username, edits, self.clock.now());
        let updated = updated.await.expect("update the user's claims");
        updated.unwrap_or_else(|| panic!("no user {username}"))
    }

    /// As `valet user disable` / `valet user enable`.
    pub async fn set_user_disabled(&self, username: &str, disabled: bool) {
        let store = &self.state.store;
        let changed = store.set_user_disabled(username, disabled, self.clock.now());
        assert!(
            changed.await.expect("disable the user"),
            "no user {username}"
        );
    }

    /// As `valet user delete`.
    pub async fn delete_user(&self, username: &str) {
        let deleted = self
            .state
            .store
            .delete_user(username, self.clock.now())
            .await;
        assert!(deleted.expect("delete the user"), "no user {username}");
    }

    /// As `valet client delete`. The server's client cache still knows it for
    /// `clients.cache_ttl`.
    pub async fn delete_client(&self, client_id: &str) {
        let deleted = self.state.store.delete_client(client_id).await;
        assert!(deleted.expect("delete the client"), "no client {client_id}");
    }

    /// As `valet client rotate-secret`: the new secret. The server's client cache still knows
    /// the old one for `clients.cache_ttl`.
    pub async fn rotate_client_secret(&self, client_id: &str) -> String {
        let store = &self.state.store;
        let mut client = store.client(client_id).await.expect("read the client");
        let client = client.as_mut().expect("the client exists");
        let secret = valet::crypto::random_token().expect("random secret");
        client.secret_hash = Some(self.state.server_keys.hasher.hash(&secret));
        client.updated_at = self.clock.now();
        assert!(
            store
                .update_client(client)
                .await
                .expect("update the client")
        );
        secret
    }

    /// See [`rotate_signing_key`].
    pub async fn rotate_signing_key(&self, alg: SigningAlg) -> String {
        rotate_signing_key(&self.state, alg).await
    }

    /// What the key reload loop does every `keys.reload_interval`, now: for tests whose
    /// subject is not that loop (keys.rs and replicas.rs wait for the loop itself).
    pub async fn reload_keys(&self) {
        let keys = &self.state.keys;
        keys.reload(self.clock.now()).await.expect("reload keys");
    }
}

/// A code record for the store's own tests: bound to nothing but its grant, client and user;
/// change the rest with struct update syntax.
pub fn code_record(
    code_hash: SecretHash,
    grant_id: &GrantId,
    client_id: &str,
    user_id: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> AuthorizationCode {
    AuthorizationCode {
        code_hash,
        grant_id: grant_id.clone(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        session_hash: None,
        redirect_uri: None,
        code_challenge: None,
        code_challenge_method: None,
        scope: ScopeSet::default(),
        audience: None,
        nonce: None,
        auth_time: now,
        created_at: now,
        expires_at,
        claims: Default::default(),
    }
}

// ---------------------------------------------------------------------------------------
// Requests several spec modules make

/// How a client authenticates at `/token` and `/revoke`: HTTP Basic with its secret, or, a
/// public client, its client_id in the body.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    Basic(&'a str, &'a str),
    Public(&'a str),
}

impl<'a> From<&'a Creds> for ClientAuth<'a> {
    fn from(creds: &'a Creds) -> Self {
        ClientAuth::Basic(&creds.id, &creds.secret)
    }
}

impl<'a> From<&'a WebClient> for ClientAuth<'a> {
    fn from(client: &'a WebClient) -> Self {
        match &client.secret {
            Some(secret) => ClientAuth::Basic(&client.client_id, secret),
            None => ClientAuth::Public(&client.client_id),
        }
    }
}

/// An attempt at client authentication (RFC 6749 §2.3) that must fail: HTTP Basic
/// credentials if any, form fields, and what it is, for messages.
pub struct BadAuth<'a> {
    pub basic: Option<(&'a str, &'a str)>,
    pub fields: Vec<(&'a str, &'a str)>,
    pub what: &'static str,
}

/// The ways a confidential client fails to authenticate, the same at every endpoint that asks.
pub fn failed_authentications(client: &Creds) -> Vec<BadAuth<'_>> {
    let id = client.id.as_str();
    let attempt = |basic, fields, what| BadAuth {
        basic,
        fields,
        what,
    };
    vec![
        attempt(None, vec![], "no client authentication"),
        attempt(
            Some((id, "wrong-secret")),
            vec![],
            "wrong secret with Basic",
        ),
        attempt(
            None,
            vec![("client_id", id), ("client_secret", "wrong-secret")],
            "wrong secret in the body",
        ),
        attempt(
            None,
            vec![("client_id", id)],
            "a confidential client's id without its secret",
        ),
    ]
}

/// The `/authorize` parameters of a code request with PKCE (S256) for the Contacts API, with
/// [`STATE`].
pub fn code_params<'a>(
    client: &'a WebClient,
    pkce: &'a Pkce,
    scope: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", &client.redirect_uri),
        ("scope", scope),
        ("audience", CONTACTS),
        ("state", STATE),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The form of `grant_type=password` for the Contacts API, with `scope` if given.
fn password_form<'a>(
    username: &'a str,
    password: &'a str,
    scope: Option<&'a str>,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("audience", CONTACTS),
    ];
    form.extend(scope.map(|scope| ("scope", scope)));
    form
}

/// The JSON body of an answer that must be 200 (the body is shown if it is not).
pub async fn ok_json(response: reqwest::Response) -> Value {
    let (status, url) = (response.status(), response.url().clone());
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// The error code of a 400 answer.
pub async fn error_400(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("error JSON");
    body["error"].as_str().expect("error code").to_owned()
}

/// Send `n` requests made by `request` at once, each on its own task: their statuses.
pub async fn concurrent_statuses<F, R>(n: usize, request: F) -> Vec<u16>
where
    F: Fn() -> R,
    R: Future<Output = reqwest::Response> + Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let response = request();
            tokio::spawn(async move { response.await.status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("request task"));
    }
    statuses
}

/// Of concurrent uses of one single-use thing, exactly one succeeded (200) and every other
/// was refused (400).
pub fn assert_exactly_one_succeeded(statuses: &[u16]) {
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(count(200), 1, "{statuses:?}");
    assert_eq!(count(400), statuses.len() - 1, "{statuses:?}");
}

/// A 400 with `error`, whose `error_description` mentions `word`.
pub async fn assert_error_400(response: reqwest::Response, error: &str, word: &str) {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("error JSON");
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(word), "{body}");
}

/// The string member `key` of a JSON answer.
pub fn str_of<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

/// The `kid` in a JWT's header.
pub fn kid(token: &str) -> String {
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    header.kid.expect("kid in the header")
}

impl TestApp {
    /// POST a form to `path` as `auth`.
    pub async fn post_as(
        &self,
        path: &str,
        auth: ClientAuth<'_>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        match auth {
            ClientAuth::Basic(id, secret) => self.post_form(path, Some((id, secret)), form).await,
            ClientAuth::Public(client_id) => {
                let mut form = form.to_vec();
                form.push(("client_id", client_id));
                self.post_form(path, None, &form).await
            }
        }
    }

    /// POST `form` with `attempt`'s credentials to `path`: RFC 6749 §5.2 `invalid_client`,
    /// 401, with a Basic challenge when Basic was tried. Returns the body.
    pub async fn assert_invalid_client(
        &self,
        path: &str,
        attempt: &BadAuth<'_>,
        form: &[(&str, &str)],
    ) -> Value {
        let what = attempt.what;
        let form = [form, &attempt.fields].concat();
        let response = self.post_form(path, attempt.basic, &form).await;
        assert_eq!(response.status(), 401, "{what}");
        if attempt.basic.is_some() {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
                .to_str()
                .unwrap();
            assert!(challenge.starts_with("Basic"), "{what}: {challenge}");
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
        body
    }

    /// GET a JSON document, which must answer 200 with a JSON content type.
    /// The kids of the published JWKS.
    pub async fn published_kids(&self) -> Vec<String> {
        let jwks = self.get_json("/.well-known/jwks.json").await;
        jwks["keys"]
            .as_array()
            .expect("a JWK Set")
            .iter()
            .map(|k| k["kid"].as_str().expect("a kid").to_owned())
            .collect()
    }

    /// `GET /userinfo` with `access_token` as a Bearer token (RFC 6750 §2.1).
    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.contains("json"), "{path}: {content_type}");
        response.json().await.expect("JSON")
    }

    /// A token request that must succeed: the token response.
    pub async fn token_ok(&self, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Value {
        ok_json(self.token(basic, form).await).await
    }

    /// Redeem a code that must be good: the token response.
    pub async fn redeemed(&self, client: &WebClient, code: &str, verifier: &str) -> Value {
        ok_json(self.redeem(client, code, Some(verifier)).await).await
    }

    /// `grant_type=password` for the Contacts API, with `scope` if given.
    pub async fn password_grant(
        &self,
        client: &Creds,
        username: &str,
        password: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let form = password_form(username, password, scope);
        self.token(Some(client.basic()), &form).await
    }

    /// The password grant for `username` with [`PASSWORD`], which must succeed: the token
    /// response.
    pub async fn password_tokens(
        &self,
        client: &Creds,
        username: &str,
        scope: Option<&str>,
    ) -> Value {
        let form = password_form(username, PASSWORD, scope);
        self.token_ok(Some(client.basic()), &form).await
    }

    /// `grant_type=refresh_token`, narrowed to `scope` if given.
    pub async fn refresh(
        &self,
        client: impl Into<ClientAuth<'_>>,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        self.post_as("/token", client.into(), &form).await
    }

    /// A refresh that must succeed: the new token response, which must not be cached.
    pub async fn refreshed(
        &self,
        client: impl Into<ClientAuth<'_>>,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Value {
        let response = self.refresh(client, refresh_token, scope).await;
        let cache_control = response.headers().get("cache-control").cloned();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "refresh with a live token: {body}");
        assert_eq!(cache_control.expect("Cache-Control"), "no-store");
        serde_json::from_str(&body).expect("token JSON")
    }

    /// A client_credentials access token for `audience`; the request must succeed.
    pub async fn service_token(&self, client: &Creds, audience: &str) -> String {
        let body = ok_json(self.client_credentials(client, audience).await).await;
        str_of(&body, "access_token").to_owned()
    }

    /// `grant_type=client_credentials` for `audience`, with HTTP Basic.
    pub async fn client_credentials(&self, client: &Creds, audience: &str) -> reqwest::Response {
        let form = [("grant_type", "client_credentials"), ("audience", audience)];
        self.token(Some(client.basic()), &form).await
    }

    /// Introspect `token` as `caller` (Basic); the answer must be 200, `no-store`, JSON.
    pub async fn introspect(&self, caller: &Creds, token: &str, hint: Option<&str>) -> Value {
        let mut form = vec![("token", token)];
        form.extend(hint.map(|hint| ("token_type_hint", hint)));
        let response = self
            .post_form("/introspect", Some(caller.basic()), &form)
            .await;
        assert_eq!(response.status(), 200, "introspection of {token:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("application/json"));
        response.json().await.expect("introspection JSON")
    }

    /// Assert that `token` is inactive, with and without either hint, and that the answer
    /// says nothing more than that (RFC 7662 §2.2).
    pub async fn assert_inactive(&self, caller: &Creds, token: &str, what: &str) {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            assert_eq!(
                self.introspect(caller, token, hint).await,
                json!({"active": false}),
                "{what} (hint {hint:?})"
            );
        }
    }

    pub async fn assert_active(&self, caller: &Creds, token: &str, what: &str) {
        let answer = self.introspect(caller, token, None).await;
        assert_eq!(answer["active"], true, "{what}: {answer}");
    }
}

// ---------------------------------------------------------------------------------------
// Starting points: records and the requests that bring them to where a test begins

impl TestApp {
    /// The Contacts API and a client_credentials client that introspects (a resource server).
    pub async fn create_resource_server(&self) -> Creds {
        self.create_contacts_api().await;
        self.create_service_client("read:contacts").await
    }

    /// Sign `username` (created here) in at `/authorize` for `client`, allow read:contacts,
    /// and return the code.
    pub async fn fresh_code(&self, client: &WebClient, pkce: &Pkce, username: &str) -> String {
        self.create_user(username).await;
        let params = code_params(client, pkce, "read:contacts");
        self.sign_in_and_allow(&params, username).await["code"].clone()
    }

    /// A public client of the code flow (see [`TestApp::create_public_code_client`]),
    /// `username` (created here) signed in through it and the code redeemed.
    pub async fn public_code_grant(&self, username: &str) -> CodeGrant {
        let client = self.create_public_code_client().await;
        let pkce = Pkce::new();
        let code = self.fresh_code(&client, &pkce, username).await;
        let tokens = self.redeemed(&client, &code, &pkce.verifier).await;
        CodeGrant {
            client,
            pkce,
            code,
            tokens,
        }
    }

    /// `username` (created here) signs in with the password grant for both Contacts scopes:
    /// the token response, which has a refresh token.
    pub async fn user_tokens(&self, client: &Creds, username: &str) -> Value {
        self.create_user(username).await;
        let scope = Some("read:contacts create:contacts");
        let body = self.password_tokens(client, username, scope).await;
        assert!(body["refresh_token"].is_string(), "{body}");
        body
    }

    /// Where the introspection and revocation tests start: a resource server that
    /// introspects, a password client, and the token response alice got from it (with a
    /// refresh token).
    pub async fn alice_signed_in(&self) -> (Creds, Creds, Value) {
        let caller = self.create_resource_server().await;
        let client = self.create_password_client().await;
        let tokens = self.user_tokens(&client, "alice").await;
        (caller, client, tokens)
    }

    /// The Contacts API, a password client, and alice: the client.
    pub async fn password_client_and_alice(&self) -> Creds {
        self.create_contacts_api().await;
        let client = self.create_password_client().await;
        self.create_user("alice").await;
        client
    }
}

/// See [`TestApp::public_code_grant`].
pub struct CodeGrant {
    pub client: WebClient,
    pub pkce: Pkce,
    /// The code, redeemed once.
    pub code: String,
    /// The token response, with a refresh token.
    pub tokens: Value,
}

// ---------------------------------------------------------------------------------------
// Verifying tokens as a relying party or resource server does

/// Verify a token independently of the signer: fetch the JWKS over HTTP, pick the key by
/// `kid`, and let jsonwebtoken check signature, `iss`, `aud` and `exp`.
pub async fn verify_with_jwks(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> (jsonwebtoken::Header, Value) {
    verify_at(&app.http, &app.base, &app.base, token, audience)
        .await
        .unwrap_or_else(|e| panic!("the token does not verify against the JWKS: {e}"))
}

/// [`verify_with_jwks`] against the JWKS of the server at `base`, for tokens of `issuer`.
pub async fn verify_at(
    http: &reqwest::Client,
    base: &str,
    issuer: &str,
    token: &str,
    audience: &str,
) -> Result<(jsonwebtoken::Header, Value), String> {
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("token header");
    let kid = header.kid.clone().expect("kid in header");
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} not in the JWKS of {base}"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| format!("{e} (at {base})"))?;
    Ok((header, data.claims))
}

/// The harness's cheap Argon2 parameters, as the server's typed settings carry them.
fn test_password_hash() -> valet::config::PasswordHashSettings {
    test_config()
        .validate()
        .expect("the test configuration is valid")
        .password_hash
}
