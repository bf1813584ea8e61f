//! Dynamic client registration (RFC 7591), client configuration (RFC 7592) and protected
//! resource metadata (RFC 9728), over HTTP on both stores: an MCP-style client finds Valet
//! from an API, registers itself and signs a user in; every error RFC 7591 §3.2.2 lists;
//! the three modes; the per-address limit and the total cap, raced.

use std::time::Duration;

use serde_json::{Value, json};
use valet::config::RegistrationMode;

use crate::backend_tests;
use crate::harness::fixtures::{CALLBACK, ClientAuth, STATE, ok_json, verify_with_jwks};
use crate::harness::flow::{Pkce, WebClient, location, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp};

backend_tests!(
    an_mcp_style_client_finds_valet_registers_and_signs_a_user_in,
    a_registration_is_read_updated_and_deleted_with_its_token,
    every_rfc_7591_error_is_answered_and_nothing_is_written,
    closed_and_token_modes,
    registrations_are_limited_per_address_and_in_total,
    protected_resource_metadata_is_found_both_ways,
    registered_clients_cannot_redirect_after_logout_unasked_and_admins_can_cut_them_off,
);

const MCP: &str = "https://mcp.example.com/mcp";

async fn open_app(backend: Backend, adjust: impl FnOnce(&mut valet::config::Config)) -> TestApp {
    let app = harness::spawn_with(backend, |c| {
        c.registration.mode = RegistrationMode::Open;
        c.registration.audiences = vec![CONTACTS.into(), MCP.into()];
        c.registration.per_address = 100;
        adjust(c);
    })
    .await;
    app.create_contacts_api().await;
    app.create_api(MCP, "Notes MCP server", "notes:read notes:write")
        .await;
    app
}

/// What an MCP client registers: a public client with a loopback or https callback.
fn mcp_metadata() -> Value {
    json!({
        "client_name": "Claude-ish assistant",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

async fn post_registration(app: &TestApp, body: &Value, token: Option<&str>) -> reqwest::Response {
    let mut request = app.http.post(app.url("/register")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// A registration that must succeed: the RFC 7591 §3.2.1 answer.
async fn registered(app: &TestApp, body: &Value, token: Option<&str>) -> Value {
    let response = post_registration(app, body, token).await;
    assert_eq!(response.status(), 201, "RFC 7591 §3.2.1");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn error_of(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().unwrap().to_owned()
}

async fn configuration(
    app: &TestApp,
    method: reqwest::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app.http.request(method, uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn registered_count(app: &TestApp) -> usize {
    let clients = app.cli_json(&["client", "list", "--json"]).await;
    clients
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["dynamically_registered"] == true)
        .count()
}

/// The MCP authorization flow: the API's metadata (RFC 9728) names Valet; Valet's metadata
/// names the registration endpoint; the client registers (public, PKCE) and signs alice in
/// with `resource` = the API, through the consent page (a registered client is never
/// first-party); the token is for that API with its scopes; the registration is listed.
async fn an_mcp_style_client_finds_valet_registers_and_signs_a_user_in(backend: Backend) {
    let app = open_app(backend, |_| {}).await;
    app.create_alice().await;
    let resource = app
        .get_json("/.well-known/oauth-protected-resource/mcp.example.com/mcp")
        .await;
    assert_eq!(resource["resource"], MCP);
    assert_eq!(resource["authorization_servers"], json!([app.base]));
    assert_eq!(
        resource["scopes_supported"],
        json!(["notes:read", "notes:write"])
    );
    let issuer = resource["authorization_servers"][0].as_str().unwrap();
    let metadata = app
        .get_json(&format!("{issuer}/.well-known/oauth-authorization-server"))
        .await;
    let endpoint = metadata["registration_endpoint"].as_str().unwrap();
    assert_eq!(endpoint, app.url("/register"));

    let client = registered(&app, &mcp_metadata(), None).await;
    let client_id = client["client_id"].as_str().unwrap();
    assert!(
        client.get("client_secret").is_none(),
        "a public client: {client}"
    );
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(client["client_name"], "Claude-ish assistant");
    assert_eq!(client["redirect_uris"], json!([CALLBACK]));
    assert_eq!(
        client["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(client["audiences"], json!([CONTACTS, MCP]));
    assert_eq!(client["first_party"], false);
    assert_eq!(client["dynamically_registered"], true);
    assert!(client["client_id_issued_at"].as_i64().unwrap() > 0);
    assert_eq!(
        client["registration_client_uri"],
        format!("{endpoint}/{client_id}")
    );
    assert!(client["registration_access_token"].as_str().unwrap().len() >= 43);

    let pkce = Pkce::new();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", "notes:read offline_access"),
        ("resource", MCP),
        ("state", STATE),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let response = app.authorize(&params).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app
        .sign_in(&login, "alice", crate::harness::fixtures::PASSWORD)
        .await;
    let consent = app.follow_to_page(response, "/consent").await;
    assert!(
        consent.contains("notes:read"),
        "consent is asked: {consent}"
    );
    assert!(
        consent.contains("registered itself") && consent.contains("app.example.com"),
        "a registered client's name is marked unverified, with where it returns to"
    );
    let response = app.decide(&consent, "allow").await;
    let answer = redirect_params(&location(&response));
    assert_eq!(answer["state"], STATE);
    let web = WebClient {
        client_id: client_id.to_owned(),
        secret: None,
        redirect_uri: CALLBACK.into(),
    };
    let tokens = ok_json(
        app.redeem(&web, &answer["code"], Some(&pkce.verifier))
            .await,
    )
    .await;
    let (_, claims) = verify_with_jwks(&app, tokens["access_token"].as_str().unwrap(), MCP).await;
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["scope"], "notes:read offline_access");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    let listed = app.cli_json(&["client", "show", client_id, "--json"]).await;
    assert_eq!(listed["dynamically_registered"], true);
    let table = app.cli_ok(&["client", "list"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table.lines().find(|l| l.contains(client_id)).unwrap();
    assert!(row.trim_end().ends_with("itself"), "{table}");
}

/// RFC 7592: read with the token; update replaces the metadata and the token (the old one
/// stops working); a bad token, another client's id, or no token is 401 with a Bearer
/// challenge; server-set members, a wrong client_id or secret are refused; two updates with
/// one token: exactly one wins; delete removes the client and its secret stops working.
async fn a_registration_is_read_updated_and_deleted_with_its_token(backend: Backend) {
    let app = open_app(backend, |_| {}).await;
    let first = registered(
        &app,
        &json!({"client_name": "Web app", "redirect_uris": [CALLBACK]}),
        None,
    )
    .await;
    let other = registered(&app, &mcp_metadata(), None).await;
    let uri = first["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = first["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = first["client_secret"]
        .as_str()
        .expect("confidential by default (RFC 7591 §2)");
    assert_eq!(first["client_secret_expires_at"], 0);
    assert_eq!(first["token_endpoint_auth_method"], "client_secret_basic");
    let client_id = first["client_id"].as_str().unwrap().to_owned();

    let read = configuration(&app, reqwest::Method::GET, &uri, Some(&token), None).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["cache-control"], "no-store");
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["client_id"], first["client_id"]);
    assert_eq!(read["redirect_uris"], json!([CALLBACK]));
    assert!(
        read.get("client_secret").is_none(),
        "never shown again: {read}"
    );
    assert_eq!(
        read["registration_access_token"],
        token.as_str(),
        "RFC 7592 §3"
    );
    assert_eq!(read["client_secret_expires_at"], 0, "RFC 7591 §3.2.1");

    let other_token = other["registration_access_token"].as_str().unwrap();
    for (token, challenge_has_error) in [
        (Some("not-the-token"), true),
        (Some(other_token), true),
        (None, false),
    ] {
        let response = configuration(&app, reqwest::Method::GET, &uri, token, None).await;
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert_eq!(challenge.contains("invalid_token"), challenge_has_error);
        assert_eq!(error_of(response, 401).await, "invalid_token");
    }

    // The update sends back what it read (the members the server sets are ignored).
    let mut update = read.clone();
    let map = update.as_object_mut().unwrap();
    map.insert("client_name".into(), json!("Web app, renamed"));
    map.insert(
        "redirect_uris".into(),
        json!([CALLBACK, "https://app.example.com/other"]),
    );
    for (bad, member) in [
        (json!({"grant_types": ["password"]}), "grant_types"),
        (json!({"client_id": "someone-else"}), "client_id"),
        (
            json!({"client_secret": "chosen-by-the-client"}),
            "client_secret",
        ),
    ] {
        let mut body = update.clone();
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let response =
            configuration(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&body)).await;
        assert_eq!(
            error_of(response, 400).await,
            "invalid_client_metadata",
            "{member}"
        );
    }
    // An administrator's write in between would be undone by a stale write; the revision
    // the write names makes it fail instead.
    let stale = app.state.store.client(&client_id).await.unwrap().unwrap();
    let mut with_secret = update.clone();
    with_secret["client_secret"] = json!(secret);
    let racing: Vec<_> = (0..4)
        .map(|_| {
            let put = app
                .http
                .put(&uri)
                .bearer_auth(&token)
                .json(&with_secret)
                .send();
            tokio::spawn(async move {
                let response = put.await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in racing {
        answers.push(task.await.unwrap());
    }
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    let updated = answers.into_iter().find(|(s, _)| *s == 200).unwrap().1;
    assert!(
        !app.state.store.update_client(&stale).await.unwrap(),
        "a write of the revision read before the update changes nothing"
    );
    assert_eq!(updated["client_name"], "Web app, renamed");
    assert_eq!(updated["redirect_uris"].as_array().unwrap().len(), 2);
    let new_token = updated["registration_access_token"].as_str().unwrap();
    assert_ne!(new_token, token);
    let old = configuration(&app, reqwest::Method::GET, &uri, Some(&token), None).await;
    assert_eq!(old.status(), 401, "the old token is spent");
    let now = configuration(&app, reqwest::Method::GET, &uri, Some(new_token), None).await;
    assert_eq!(now.status(), 200);
    let now: Value = now.json().await.unwrap();
    assert_eq!(
        now["client_name"], "Web app, renamed",
        "not undone by the stale write"
    );

    // The secret still authenticates (an unknown code is invalid_grant, not invalid_client).
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", "nope"),
        ("redirect_uri", CALLBACK),
    ];
    let before = app
        .post_as("/token", ClientAuth::Basic(&client_id, secret), &redeem)
        .await;
    assert_eq!(error_of(before, 400).await, "invalid_grant");

    let gone = configuration(&app, reqwest::Method::DELETE, &uri, Some(new_token), None).await;
    assert_eq!(gone.status(), 204);
    let again = configuration(&app, reqwest::Method::DELETE, &uri, Some(new_token), None).await;
    assert_eq!(error_of(again, 401).await, "invalid_token");
    app.advance(Duration::from_secs(2)); // past clients.cache_ttl
    let after = app
        .post_as("/token", ClientAuth::Basic(&client_id, secret), &redeem)
        .await;
    assert_eq!(after.status(), 401, "the deleted client's secret is dead");
    assert_eq!(
        registered_count(&app).await,
        1,
        "only the other client is left"
    );
}

/// RFC 7591 §3.2.2: `invalid_redirect_uri`, `invalid_client_metadata` and
/// `unapproved_software_statement`, each for the reasons the CLI refuses the same metadata;
/// and a refused registration writes nothing.
async fn every_rfc_7591_error_is_answered_and_nothing_is_written(backend: Backend) {
    let app = open_app(backend, |_| {}).await;
    let with = |extra: Value| {
        let mut body = json!({"redirect_uris": [CALLBACK]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"redirect_uris": ["http://evil.example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["not a uri"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "no redirect"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": "https://app.example.com/cb"}),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["password"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["client_credentials"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["magic"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"response_types": ["token"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"token_endpoint_auth_method": "client_secret_jwt"})),
            "invalid_client_metadata",
        ),
        (
            with(
                json!({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
            ),
            "invalid_client_metadata",
        ),
        (
            with(json!({"jwks_uri": "https://keys.example.com/jwks", "jwks": {"keys": []}})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"jwks_uri": "http://keys.example.com/jwks"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"jwks": {"keys": []}})),
            "invalid_client_metadata",
        ),
        (with(json!({"scope": "a  b"})), "invalid_client_metadata"),
        (
            with(json!({"audiences": ["https://payroll.example.com"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"first_party": true})),
            "invalid_client_metadata",
        ),
        (with(json!({"client_name": ""})), "invalid_client_metadata"),
        (
            with(json!({"backchannel_logout_uri": "http://rp.example.com/bc"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"post_logout_redirect_uris": ["ftp://x"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"require_pushed_authorization_requests": "yes"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"grant_types": ["implicit"], "response_types": ["id_token"]})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"client_name": "Goo\u{202e}elgoog"})),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": (0..11).map(|i| format!("https://app.example.com/{i}")).collect::<Vec<_>>()}),
            "invalid_client_metadata",
        ),
        (
            with(json!({"jwks_uri": "https://keys.example.com/jwks"})),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
        (
            with(json!({"software_statement": "eyJhbGciOiJSUzI1NiJ9.e30.sig"})),
            "unapproved_software_statement",
        ),
    ];
    for (body, error) in cases {
        let response = post_registration(&app, &body, None).await;
        assert_eq!(response.headers()["cache-control"], "no-store", "{body}");
        assert_eq!(error_of(response, 400).await, error, "{body}");
    }
    // Not JSON at all.
    let form = app
        .http
        .post(app.url("/register"))
        .form(&[("redirect_uris", CALLBACK)])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(form, 400).await, "invalid_client_metadata");
    let broken = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{\"redirect_uris\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(broken, 400).await, "invalid_client_metadata");
    assert_eq!(registered_count(&app).await, 0, "nothing half-made");
    // Unknown members are ignored (RFC 7591 §2), and the same request is then fine.
    let fine = registered(&app, &with(json!({"logo_uri": "https://x/logo.png"})), None).await;
    assert!(
        fine.get("logo_uri").is_none(),
        "not kept, so not echoed: {fine}"
    );
}

/// `closed` (the default): no endpoint, nothing in discovery. `token`: no token, a wrong one,
/// a used-up one and an expired one are `invalid_token`; a token good for two registrations
/// registers two; and with a token a client may use client_credentials.
async fn closed_and_token_modes(backend: Backend) {
    let closed = harness::spawn(backend).await;
    let metadata = closed
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "{metadata}"
    );
    let response = post_registration(&closed, &mcp_metadata(), None).await;
    assert_eq!(response.status(), 404);
    drop(closed);

    let app = open_app(backend, |c| c.registration.mode = RegistrationMode::Token).await;
    let missing = post_registration(&app, &mcp_metadata(), None).await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"valet\""
    );
    assert_eq!(error_of(missing, 401).await, "invalid_token");
    let wrong = post_registration(&app, &mcp_metadata(), Some("guess")).await;
    assert_eq!(error_of(wrong, 401).await, "invalid_token");

    let created = app
        .cli_json(&[
            "registration",
            "token",
            "create",
            "--uses",
            "2",
            "--ttl",
            "1h",
            "--json",
        ])
        .await;
    let token = created["initial_access_token"].as_str().unwrap();
    assert_eq!(created["uses"], 2);
    let first = registered(&app, &mcp_metadata(), Some(token)).await;
    let service = registered(
        &app,
        &json!({
            "grant_types": ["client_credentials"],
            "audiences": [CONTACTS],
            "scope": "read:contacts",
        }),
        Some(token),
    )
    .await;
    let used_up = post_registration(&app, &mcp_metadata(), Some(token)).await;
    assert_eq!(error_of(used_up, 401).await, "invalid_token");

    // A client registered anonymously (say before the server switched from open to token
    // mode) cannot give itself client_credentials later: what counts is how it registered.
    let first_id = first["client_id"].as_str().unwrap();
    let mut record = app.state.store.client(first_id).await.unwrap().unwrap();
    record.registration.as_mut().unwrap().with_initial_token = false;
    assert!(app.state.store.update_client(&record).await.unwrap());
    let mut escalate = first.clone();
    escalate["grant_types"] = json!(["authorization_code", "client_credentials"]);
    escalate["token_endpoint_auth_method"] = json!("client_secret_basic");
    let response = configuration(
        &app,
        reqwest::Method::PUT,
        first["registration_client_uri"].as_str().unwrap(),
        first["registration_access_token"].as_str(),
        Some(&escalate),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("initial access token"),
        "{body}"
    );
    let issued = app
        .post_as(
            "/token",
            ClientAuth::Basic(
                service["client_id"].as_str().unwrap(),
                service["client_secret"].as_str().unwrap(),
            ),
            &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
        )
        .await;
    assert_eq!(ok_json(issued).await["scope"], "read:contacts");

    let short = app
        .cli_json(&["registration", "token", "create", "--ttl", "10m", "--json"])
        .await;
    app.advance(Duration::from_secs(11 * 60));
    let expired = post_registration(
        &app,
        &mcp_metadata(),
        short["initial_access_token"].as_str(),
    )
    .await;
    assert_eq!(error_of(expired, 401).await, "invalid_token");
    for (args, needle) in [
        (
            vec!["registration", "token", "create", "--ttl", "soon"],
            "--ttl",
        ),
        (
            vec!["registration", "token", "create", "--uses", "0"],
            "--uses",
        ),
    ] {
        let out = app.cli(&args).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle));
    }
    assert_eq!(registered_count(&app).await, 2);
}

/// `per_address` registrations from one address, then 429 with `Retry-After` and the OAuth
/// error shape while other addresses still register; `max_clients` holds under a race of
/// parallel registrations, and a deleted registration frees its place.
async fn registrations_are_limited_per_address_and_in_total(backend: Backend) {
    let app = open_app(backend, |c| {
        c.registration.per_address = 2;
        c.registration.max_clients = 5;
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let from = |address: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/register"))
                .header("x-forwarded-for", address)
                .json(&mcp_metadata())
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(from("203.0.113.1").await.status(), 201);
    assert_eq!(from("203.0.113.1").await.status(), 201);
    let refused = from("203.0.113.1").await;
    assert!(
        refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(error_of(refused, 429).await, "temporarily_unavailable");

    // Three places left; eight addresses race for them.
    let addresses = [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
        "198.51.100.6",
        "198.51.100.7",
        "198.51.100.8",
    ];
    let racing: Vec<_> = addresses
        .iter()
        .map(|address| {
            let post = app
                .http
                .post(app.url("/register"))
                .header("x-forwarded-for", *address)
                .json(&mcp_metadata())
                .send();
            tokio::spawn(async move { post.await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in racing {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(registered_count(&app).await, 5);
    let full = from("192.0.2.9").await;
    assert_eq!(error_of(full, 400).await, "access_denied");

    // An administrator deleting a registered client frees its place too.
    let clients = app.cli_json(&["client", "list", "--json"]).await;
    let victim = clients[0]["client_id"].as_str().unwrap();
    app.cli_ok(&["client", "delete", victim]).await;
    assert_eq!(from("192.0.2.9").await.status(), 201);
}

/// RFC 9728 §3: at `/.well-known/oauth-protected-resource/<identifier without https://>`,
/// or at the API's own well-known path forwarded by a proxy (matched with `Host`); 404 for
/// anything that names no API; no registration needed to read it.
async fn protected_resource_metadata_is_found_both_ways(backend: Backend) {
    let app = harness::spawn(backend).await;
    app.create_contacts_api().await;
    app.create_api(MCP, "Notes MCP server", "notes:read notes:write")
        .await;
    let direct = app
        .get_json("/.well-known/oauth-protected-resource/contacts.example.com")
        .await;
    assert_eq!(direct["resource"], CONTACTS);
    assert_eq!(direct["resource_name"], "Contacts");
    assert_eq!(direct["bearer_methods_supported"], json!(["header"]));
    let proxied = app
        .http
        .get(app.url("/.well-known/oauth-protected-resource/mcp"))
        .header("host", "mcp.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(proxied.headers()["access-control-allow-origin"], "*");
    let proxied: Value = proxied.json().await.unwrap();
    assert_eq!(proxied["resource"], MCP);
    assert_eq!(proxied["authorization_servers"], json!([app.base]));
    for path in [
        "/.well-known/oauth-protected-resource/nowhere.example.com",
        "/.well-known/oauth-protected-resource",
    ] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
}

/// A client that registered itself is redirected to after logout only with an ID token it was
/// issued (else Valet's domain would redirect anywhere on an anonymous registrant's say); an
/// administrator can revoke its registration access token.
async fn registered_clients_cannot_redirect_after_logout_unasked_and_admins_can_cut_them_off(
    backend: Backend,
) {
    let app = open_app(backend, |_| {}).await;
    let mut metadata = mcp_metadata();
    metadata["post_logout_redirect_uris"] = json!(["https://evil.example.com/landing"]);
    let client = registered(&app, &metadata, None).await;
    let client_id = client["client_id"].as_str().unwrap();
    let logout = app
        .get(&format!(
            "/logout?client_id={client_id}&post_logout_redirect_uri=https%3A%2F%2Fevil.example.com%2Flanding"
        ))
        .await;
    assert_eq!(logout.status(), 400);
    assert!(logout.headers().get("location").is_none());
    assert!(
        logout
            .text()
            .await
            .unwrap()
            .contains("sign-out request is not valid")
    );

    let uri = client["registration_client_uri"].as_str().unwrap();
    let token = client["registration_access_token"].as_str();
    let before = configuration(&app, reqwest::Method::GET, uri, token, None).await;
    assert_eq!(before.status(), 200);
    app.cli_ok(&["client", "update", client_id, "--revoke-registration-token"])
        .await;
    let after = configuration(&app, reqwest::Method::GET, uri, token, None).await;
    assert_eq!(error_of(after, 401).await, "invalid_token");
    let shown = app.cli_json(&["client", "show", client_id, "--json"]).await;
    assert_eq!(
        shown["dynamically_registered"], true,
        "still a registered client"
    );
    let out = app
        .cli(&[
            "client",
            "update",
            "nope-not-registered",
            "--revoke-registration-token",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
}
