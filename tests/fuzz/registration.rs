//! Target `registration`: the registration-metadata validator. Request bodies go through
//! `registration::register` and `registration::update` (RFC 7591 §3, RFC 7592 §2.2: the JSON
//! member readers and the rules for self-registered clients), and metadata changes through
//! `client_metadata::apply` (the checks `valet client create|update` share), on an in-memory
//! store in open registration mode.

use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{Map, Value, json};
use valet::domain::{GrantType, Origin, ScopeSet, SigningAlg};
use valet::oauth::ErrorCode;
use valet::oauth::client_metadata::{AuthMethod, KeysInput, MetadataChange, apply};
use valet::oauth::redirect::validate_registration;
use valet::oauth::registration::{register, update};
use valet::store::Client;
use valet::tokens::SigningKey;
use valet::tokens::client_keys::{check_jwks_uri, parse_jwks};

use crate::{
    API, Fixture, Fuzz, client, corpus_text, edits, json_value, mutate_text, nasty_string, replay,
};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

struct Setup {
    fx: Fixture,
    /// A real public JWK Set.
    jwks: Value,
}

fn setup() -> Rc<Setup> {
    let (key, _) = SigningKey::generate(SigningAlg::EdDSA).unwrap();
    Rc::new(Setup {
        fx: Fixture::start(),
        jwks: json!({ "keys": [key.public_jwk()] }),
    })
}

/// What holds of any client record that passed the checks.
fn check_client(client: &Client) -> TestCaseResult {
    prop_assert!(!client.grant_types.is_empty());
    if client.is_public() {
        prop_assert!(
            !client
                .grant_types
                .iter()
                .any(|g| g.needs_confidential_client())
        );
    }
    if client.grant_types.iter().any(|g| g.uses_redirect()) {
        prop_assert!(!client.redirect_uris.is_empty());
    }
    for uri in client
        .redirect_uris
        .iter()
        .chain(&client.logout.post_logout_redirect_uris)
    {
        prop_assert!(
            validate_registration(uri).is_ok() && !uri.contains('#'),
            "{uri}"
        );
    }
    for origin in &client.allowed_origins {
        prop_assert!(Origin::parse(origin).is_some(), "{origin}");
    }
    let name = &client.client_name;
    prop_assert!(!name.trim().is_empty() && name.chars().count() <= 200);
    prop_assert!(!name.chars().any(char::is_control));
    prop_assert_eq!(
        ScopeSet::parse(&client.scope.to_string()),
        Ok(client.scope.clone())
    );
    if let Some(uri) = &client.logout.backchannel_logout_uri {
        prop_assert!(
            check_jwks_uri(uri).is_ok(),
            "same rule as a jwks_uri: {uri}"
        );
    }
    prop_assert!(!(client.keys.jwks.is_some() && client.keys.jwks_uri.is_some()));
    if let Some(jwks) = &client.keys.jwks {
        prop_assert!(parse_jwks(jwks).is_ok());
        prop_assert!(client.secret_hash.is_none());
    }
    if let Some(uri) = &client.keys.jwks_uri {
        prop_assert!(check_jwks_uri(uri).is_ok());
    }
    Ok(())
}

/// What the registration endpoint may answer for `body`.
fn check_registration(
    setup: &Setup,
    body: &Value,
    result: Result<valet::oauth::registration::RegisteredClient, valet::oauth::OAuthError>,
) -> TestCaseResult {
    let object = body.as_object();
    let member = |name: &str| object.and_then(|o| o.get(name)).filter(|v| !v.is_null());
    match result {
        Ok(registered) => {
            let client = &registered.client;
            check_client(client)?;
            prop_assert!(object.is_some());
            // What a client registering itself may never get.
            prop_assert!(!client.first_party);
            prop_assert!(client.keys.jwks_uri.is_none());
            prop_assert!(client.logout.backchannel_logout_uri.is_none());
            prop_assert!(member("software_statement").is_none());
            prop_assert!(
                client
                    .grant_types
                    .iter()
                    .all(|g| !matches!(g, GrantType::Password | GrantType::ClientCredentials))
            );
            prop_assert!(client.audiences.iter().all(|a| a == API));
            // Nothing sent is silently dropped or changed.
            if let Some(Value::Array(uris)) = member("redirect_uris") {
                for uri in uris
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|u| !u.is_empty())
                {
                    prop_assert!(client.redirect_uris.iter().any(|r| r == uri));
                }
            }
            if let Some(Value::String(scope)) = member("scope") {
                prop_assert_eq!(Ok(client.scope.clone()), ScopeSet::parse(scope));
            }
            if let Some(Value::Array(grants)) = member("grant_types") {
                for g in grants
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|g| !g.is_empty())
                {
                    prop_assert!(client.grant_types.iter().any(|c| c.as_str() == g), "{g}");
                }
            }
            prop_assert!(registered.access_token.is_some());
            let json = registered.to_json(&setup.fx.core);
            prop_assert_eq!(&json["client_id"], &json!(client.client_id));
        }
        Err(e) => {
            crate::check_error(&e)?;
            prop_assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidClientMetadata
                        | ErrorCode::InvalidRedirectUri
                        | ErrorCode::UnapprovedSoftwareStatement
                        | ErrorCode::InvalidRequest
                ),
                "{:?}",
                e
            );
        }
    }
    Ok(())
}

/// Register `body`; if that worked, update the client with `second` (client_id filled in).
fn check_body(setup: &Setup, body: &Value, second: Option<&Value>) -> TestCaseResult {
    let core = &setup.fx.core;
    let result = setup.fx.block_on(register(core, body, None, PEER));
    let registered = match &result {
        Ok(r) => Some((r.client.client_id.clone(), r.access_token.clone().unwrap())),
        Err(_) => None,
    };
    check_registration(setup, body, result)?;
    if let (Some((client_id, token)), Some(second)) = (registered, second) {
        let mut second = second.clone();
        if let Some(object) = second.as_object_mut() {
            object.insert("client_id".into(), json!(client_id));
        }
        let result = setup.fx.block_on(update(core, &client_id, &token, &second));
        if result.is_ok() {
            let server_set = [
                "registration_access_token",
                "registration_client_uri",
                "client_secret_expires_at",
                "client_id_issued_at",
                "client_secret",
            ];
            prop_assert!(server_set.iter().all(|m| second.get(m).is_none()));
        }
        check_registration(setup, &second, result)?;
    }
    Ok(())
}

/// A member value: usually plausible, sometimes of any type.
fn member(good: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => good.prop_map(Some),
        4 => Just(None),
        1 => json_value().prop_map(Some),
    ]
}

fn strings(
    items: impl Strategy<Value = String> + 'static,
    max: usize,
) -> impl Strategy<Value = Value> {
    prop::collection::vec(items, 0..max).prop_map(Value::from)
}

fn pick(options: &[&'static str]) -> impl Strategy<Value = String> + use<> {
    prop::sample::select(options.to_vec()).prop_map(str::to_owned)
}

/// A registration request with each RFC 7591 member absent, plausible, or anything.
fn body(jwks: Value) -> impl Strategy<Value = Value> {
    let grants = pick(&[
        "authorization_code",
        "authorization_code",
        "refresh_token",
        "implicit",
        "client_credentials",
        "password",
        "urn:ietf:params:oauth:grant-type:device_code",
        "",
        "AUTHORIZATION_CODE",
        "token",
    ]);
    let uris = prop_oneof![
        4 => pick(&["https://app.example.com/cb", "http://127.0.0.1/cb", "com.example.app:/cb"]),
        3 => crate::redirect::uri(),
        1 => nasty_string(30),
    ];
    let origins = prop_oneof![
        pick(&[
            "https://app.example.com",
            "http://localhost:3000",
            "https://app.example.com/",
            "null",
            "*",
            "https://app.example.com:443"
        ]),
        nasty_string(20),
    ];
    let scope = prop_oneof![
        pick(&[
            "openid",
            "openid profile email",
            "read:things",
            "read:things write:things",
            ""
        ]),
        "[!-~]{1,8}( [!-~]{1,8}){0,3}",
        nasty_string(20),
    ];
    let jwks = prop_oneof![
        3 => Just(jwks),
        1 => json_value().prop_map(|keys| json!({ "keys": keys })),
        1 => json_value(),
    ];
    let fields = (
        member(prop_oneof![nasty_string(30), "[ -~]{190,210}"].prop_map(Value::from)),
        member(strings(grants, 4)),
        member(strings(
            pick(&["code", "token", "id_token", "code id_token", ""]),
            3,
        )),
        member(strings(uris.clone(), 3)),
        member(strings(uris, 2)),
        member(scope.prop_map(Value::from)),
        member(strings(pick(&[API, "https://other.example", ""]), 2)),
        member(strings(origins, 2)),
        member(
            pick(&[
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
                "",
                "tls_client_auth",
            ])
            .prop_map(Value::from),
        ),
        member(jwks),
        member(any::<bool>().prop_map(Value::from)),
        prop::option::weighted(
            0.1,
            (
                pick(&[
                    "jwks_uri",
                    "backchannel_logout_uri",
                    "software_statement",
                    "first_party",
                    "client_secret",
                    "registration_access_token",
                    "client_id",
                ]),
                prop_oneof![
                    json_value(),
                    Just(json!("https://client.example/x")),
                    Just(json!(false))
                ],
            ),
        ),
    );
    fields.prop_map(
        |(
            name,
            grants,
            responses,
            redirects,
            logout,
            scope,
            audiences,
            origins,
            method,
            jwks,
            par,
            rare,
        )| {
            let mut body = Map::new();
            for (member, value) in [
                ("client_name", name),
                ("grant_types", grants),
                ("response_types", responses),
                ("redirect_uris", redirects),
                ("post_logout_redirect_uris", logout),
                ("scope", scope),
                ("audiences", audiences),
                ("allowed_origins", origins),
                ("token_endpoint_auth_method", method),
                ("jwks", jwks),
                ("require_pushed_authorization_requests", par),
            ] {
                if let Some(value) = value {
                    body.insert(member.into(), value);
                }
            }
            if let Some((member, value)) = rare {
                body.insert(member, value);
            }
            Value::Object(body)
        },
    )
}

/// A change as `valet client update` makes one.
fn change(jwks: Value) -> impl Strategy<Value = MetadataChange> {
    let list = |s: BoxedStrategy<String>| prop::option::of(prop::collection::vec(s, 0..3));
    let grants = pick(&[
        "authorization_code",
        "refresh_token",
        "implicit",
        "client_credentials",
        "password",
        "",
        "nope",
    ])
    .boxed();
    let uris = prop_oneof![crate::redirect::uri(), nasty_string(20)].boxed();
    let keys = prop::option::of(prop_oneof![
        Just(KeysInput::Jwks(jwks.to_string())),
        nasty_string(40).prop_map(KeysInput::Jwks),
        crate::redirect::uri().prop_map(KeysInput::JwksUri),
    ]);
    let method = prop::option::of(prop::sample::select(vec![
        AuthMethod::Secret,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::None,
    ]));
    (
        (
            prop::option::of(nasty_string(30)),
            list(grants),
            list(pick(&["code", "token", "id_token"]).boxed()),
            list(uris.clone()),
            prop::option::of(prop_oneof![
                nasty_string(20),
                Just("openid read:things".to_owned())
            ]),
            list(pick(&[API, "https://other.example"]).boxed()),
        ),
        (
            list(prop_oneof![nasty_string(20), Just("https://app.example.com".to_owned())].boxed()),
            list(uris.clone()),
            prop::option::of(prop_oneof![uris, Just(String::new())]),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            method,
            keys,
        ),
    )
        .prop_map(
            |(
                (client_name, grant_types, response_types, redirect_uris, scope, audiences),
                (
                    allowed_origins,
                    post_logout,
                    backchannel,
                    require_par,
                    first_party,
                    auth_method,
                    keys,
                ),
            )| MetadataChange {
                client_name,
                grant_types,
                response_types,
                redirect_uris,
                scope,
                audiences,
                allowed_origins,
                post_logout_redirect_uris: post_logout,
                backchannel_logout_uri: backchannel,
                require_par,
                first_party,
                auth_method,
                keys,
            },
        )
}

#[test]
fn fuzz() {
    let setup = setup();
    let jwks = setup.jwks.clone();
    let (s1, s2, s3, s4, s5) = (
        setup.clone(),
        setup.clone(),
        setup.clone(),
        setup.clone(),
        setup.clone(),
    );
    Fuzz::new("registration")
        .prop(
            "near_valid_bodies",
            (body(jwks.clone()), prop::option::of(body(jwks.clone()))),
            move |(body, second)| check_body(&s1, &body, second.as_ref()),
        )
        .prop("arbitrary_json", json_value(), move |body| {
            check_body(&s2, &body, None)
        })
        .prop(
            "mutated_bodies",
            (body(jwks.clone()), edits()),
            move |(body, edits)| {
                // Edited as bytes; only what still parses as JSON reaches the endpoint.
                let text = mutate_text(&body.to_string(), &edits);
                match serde_json::from_str::<Value>(&text) {
                    Ok(value) => check_body(&s3, &value, None),
                    Err(_) => Ok(()),
                }
            },
        )
        .prop(
            "metadata_changes",
            (change(jwks), any::<bool>()),
            move |(change, public)| {
                let core = &s4.fx.core;
                let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
                let mut record = client(core, "admin-made", &grants, None);
                record.redirect_uris = vec!["https://app.example.com/cb".into()];
                if public {
                    record.secret_hash = None;
                }
                let hasher = &core.server_keys.hasher;
                let result =
                    s4.fx
                        .block_on(apply(&mut record, change, core.store.as_ref(), hasher));
                if let Ok(secret) = result {
                    check_client(&record)?;
                    if let Some(secret) = secret {
                        let hash = record.secret_hash.as_ref();
                        prop_assert!(hash.is_some_and(|h| hasher.verify(&secret, h)));
                    }
                }
                Ok(())
            },
        )
        .prop("client_metadata_names", nasty_string(250), move |name| {
            // Names are the one free-text member: any text is taken or refused cleanly.
            let body =
                json!({"client_name": name, "redirect_uris": ["https://app.example.com/cb"]});
            check_body(&s5, &body, None)
        })
        .run();
}

#[test]
fn corpus_replays() {
    let setup = setup();
    replay(corpus_text("registration"), |text| {
        let body: Value = serde_json::from_str(&text).expect("a seed is JSON");
        check_body(&setup, &body, Some(&body))
    });
}
