//! Every CLI subcommand on both stores, including bad input: exit 1 with a one-line message.

use serde_json::Value;

use crate::harness::{self, CONTACTS, TestApp};
use crate::store_tests;

store_tests!(
    client_commands,
    user_commands,
    user_update_sets_the_openid_claims,
    user_claims_refuse_bad_input_and_change_nothing,
    api_commands,
    bad_input_exits_1_with_a_message,
    human_output_is_tables,
    health_probe_follows_readiness
);

async fn fails(app: &TestApp, args: &[&str], needle: &str) {
    let out = app.cli(args).await;
    assert_eq!(out.status.code(), Some(1), "valet {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(needle),
        "valet {args:?}: stderr {stderr:?} lacks {needle:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for a failure");
}

async fn client_commands(app: TestApp) {
    app.create_contacts_api().await;
    let created = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "Web App",
            "--grant-type",
            "authorization_code,refresh_token",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--scope",
            "read:contacts openid",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert_eq!(created["client_name"], "Web App");
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(created["response_types"], serde_json::json!(["code"]));
    assert_eq!(created["redirect_uris"].as_array().unwrap().len(), 2);
    assert_eq!(created["scope"], "openid read:contacts");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["first_party"], false);
    let secret = created["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43, "256-bit secret");

    let shown = app.cli_json(&["client", "show", &id, "--json"]).await;
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is never shown again"
    );
    assert_eq!(shown["client_id"], id.as_str());

    let public = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "SPA",
            "--public",
            "--first-party",
            "--redirect-uri",
            "https://spa.example.com/cb",
            "--json",
        ])
        .await;
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert_eq!(public["first_party"], true);
    assert!(public.get("client_secret").is_none());

    let listed = app.cli_json(&["client", "list", "--json"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let updated = app
        .cli_json(&[
            "client",
            "update",
            &id,
            "--name",
            "Renamed",
            "--scope",
            "read:contacts",
            "--json",
        ])
        .await;
    assert_eq!(updated["client_name"], "Renamed");
    assert_eq!(updated["scope"], "read:contacts");
    assert_eq!(
        updated["grant_types"], created["grant_types"],
        "fields not given are kept"
    );

    let rotated = app
        .cli_json(&["client", "rotate-secret", &id, "--json"])
        .await;
    assert_ne!(rotated["client_secret"].as_str().unwrap(), secret);

    app.cli_ok(&["client", "delete", &id]).await;
    fails(&app, &["client", "show", &id], "no client").await;
}

async fn user_commands(app: TestApp) {
    let mut create = app.cli_command(&[
        "user",
        "create",
        "--username",
        "alice",
        "--email",
        "alice@example.com",
        "--name",
        "Alice Liddell",
        "--password-stdin",
        "--json",
    ]);
    create
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = create.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"wonder land\nignored second line\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["name"], "Alice Liddell");
    assert_eq!(user["disabled"], false);
    let id = user["id"].as_str().unwrap().to_owned();

    // The password is the first line only, stored as Argon2id, never in the clear.
    let stored = app.stored_user("alice").await;
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(!stored.password_hash.contains("wonder"));
    {
        use argon2::PasswordVerifier;
        let parsed = argon2::PasswordHash::new(&stored.password_hash).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"wonder land", &parsed)
                .is_ok()
        );
    }

    let out = app
        .cli_ok(&[
            "user",
            "create",
            "--username",
            "bob",
            "--password",
            "builder",
            "--json",
        ])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning"),
        "--password warns"
    );

    let listed = app.cli_json(&["user", "list", "--json"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    app.cli_ok(&["user", "disable", "alice"]).await;
    assert_eq!(
        app.cli_json(&["user", "show", "alice", "--json"]).await["disabled"],
        true
    );
    app.cli_ok(&["user", "enable", "alice"]).await;
    let shown = app.cli_json(&["user", "show", "alice", "--json"]).await;
    assert_eq!(shown["disabled"], false);
    assert_eq!(shown["id"], id.as_str(), "the id is stable");

    let before = app.stored_user("alice").await.password_hash;
    app.cli_ok(&["user", "set-password", "alice", "--password", "new pass"])
        .await;
    let after = app.stored_user("alice").await.password_hash;
    assert_ne!(before, after);

    app.cli_ok(&["user", "delete", "alice"]).await;
    fails(&app, &["user", "show", "alice"], "no user").await;
    fails(
        &app,
        &["user", "create", "--username", "bob", "--password", "x"],
        "already exists",
    )
    .await;
}

/// `valet user create|update` with the OpenID claims (SPEC §2): each option replaces its
/// claim and leaves the others, an empty value clears one, `--json` shows them under their
/// claim names with `null` for unset ones.
async fn user_update_sets_the_openid_claims(app: TestApp) {
    let created = app
        .cli_json(&[
            "user",
            "create",
            "--username",
            "alice",
            "--password",
            "x",
            "--email",
            "alice@example.com",
            "--given-name",
            "Alice",
            "--locale",
            "en-GB",
            "--json",
        ])
        .await;
    assert_eq!(created["given_name"], "Alice");
    assert_eq!(created["locale"], "en-GB");
    for unset in [
        "email_verified",
        "name",
        "family_name",
        "picture",
        "phone_number",
        "address",
    ] {
        assert_eq!(created[unset], Value::Null, "{unset}: {created}");
    }

    let updated = app
        .cli_json(&[
            "user",
            "update",
            "alice",
            "--email-verified",
            "true",
            "--name",
            "Alice Liddell",
            "--given-name",
            "",
            "--family-name",
            "Liddell",
            "--picture",
            "https://images.example.com/alice.png",
            "--phone",
            "+44 1865 270000",
            "--address-street",
            "Christ Church\nSt Aldates",
            "--address-locality",
            "Oxford",
            "--address-country",
            "United Kingdom",
            "--json",
        ])
        .await;
    let expected = serde_json::json!({
        "id": created["id"],
        "username": "alice",
        "email": "alice@example.com",
        "email_verified": true,
        "name": "Alice Liddell",
        "given_name": null,
        "family_name": "Liddell",
        "picture": "https://images.example.com/alice.png",
        "locale": "en-GB",
        "phone_number": "+44 1865 270000",
        "address": {
            "street_address": "Christ Church\nSt Aldates",
            "locality": "Oxford",
            "country": "United Kingdom",
        },
        "disabled": false,
        "created_at": created["created_at"],
        "updated_at": updated["updated_at"],
    });
    assert_eq!(updated, expected);
    assert!(updated["updated_at"].as_str() >= created["updated_at"].as_str());
    assert_eq!(
        app.cli_json(&["user", "show", "alice", "--json"]).await,
        expected
    );
    let stored = app.stored_user("alice").await;
    assert_eq!(stored.profile.family_name.as_deref(), Some("Liddell"));

    // A new address is not the verified one: it drops email_verified unless given again.
    let moved = [
        "user",
        "update",
        "alice",
        "--email",
        "alice@wonderland.example",
    ];
    let moved = app.cli_json(&[&moved[..], &["--json"]].concat()).await;
    assert_eq!(moved["email"], "alice@wonderland.example");
    assert_eq!(moved["email_verified"], Value::Null);
    let args = ["user", "update", "alice", "--email", "a@wonderland.example"];
    let verified = [&args[..], &["--email-verified", "true", "--json"]].concat();
    assert_eq!(app.cli_json(&verified).await["email_verified"], true);

    // Clearing every member of the address clears the address.
    let cleared = app
        .cli_json(&[
            "user",
            "update",
            "alice",
            "--address-street",
            "",
            "--address-locality",
            "",
            "--address-country",
            "",
            "--json",
        ])
        .await;
    assert_eq!(cleared["address"], Value::Null);
    assert_eq!(cleared["phone_number"], "+44 1865 270000", "the rest stays");

    // For people: one line per claim.
    let out = app.cli_ok(&["user", "show", "alice"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Liddell") && text.contains("+44 1865 270000"),
        "{text}"
    );
}

/// Bad claim values, an unknown user, a password option or no option at all: exit 1 with one
/// line on stderr, and nothing written, not even the valid options given alongside.
async fn user_claims_refuse_bad_input_and_change_nothing(app: TestApp) {
    app.cli_ok(&[
        "user",
        "create",
        "--username",
        "alice",
        "--password",
        "x",
        "--email",
        "alice@example.com",
        "--given-name",
        "Alice",
    ])
    .await;
    let before = app.stored_user("alice").await;
    let update = |bad: &[&'static str]| {
        let args: &[&str] = &["user", "update", "alice", "--given-name", "Mallory"];
        [args, bad].concat()
    };
    // (the command line, a phrase its one-line message must contain)
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (update(&["--picture", "not a url"]), "--picture"),
        (
            update(&["--picture", "ftp://example.com/a.png"]),
            "--picture",
        ),
        (
            update(&["--email", "alice.example.com"]),
            "not an email address",
        ),
        (
            update(&["--email-verified", "yes"]),
            "--email-verified takes true or false",
        ),
        (update(&["--locale", "en_US"]), "--locale"),
        (update(&["--phone", "call me"]), "--phone"),
        (update(&["--name", "Alice\u{7}"]), "control characters"),
        (
            update(&["--address-locality", "Ox\nford"]),
            "control characters",
        ),
        (
            vec!["user", "update", "ghost", "--name", "Ghost"],
            "no user `ghost`",
        ),
        (vec!["user", "update", "alice"], "nothing to change"),
        (
            vec![
                "user",
                "create",
                "--username",
                "carol",
                "--password",
                "x",
                "--picture",
                "carol.png",
            ],
            "--picture",
        ),
        (
            vec![
                "user",
                "create",
                "--username",
                "carol",
                "--password",
                "x",
                "--email-verified",
                "true",
            ],
            "--email-verified true needs the --email",
        ),
    ];
    for (args, needle) in cases {
        let out = app.cli(&args).await;
        assert_eq!(out.status.code(), Some(1), "valet {args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "valet {args:?}: {stderr:?}");
        assert!(
            stderr.contains(needle),
            "valet {args:?}: {stderr:?} lacks {needle:?}"
        );
        assert!(out.stdout.is_empty(), "valet {args:?}: nothing on stdout");
    }
    // No password options on update (a usage error, so clap's own message).
    fails(&app, &update(&["--password", "x"]), "--password").await;

    assert_eq!(app.stored_user("alice").await, before, "alice is unchanged");
    let users = app.cli_json(&["user", "list", "--json"]).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "no carol: {users}");
}

async fn api_commands(app: TestApp) {
    let api = app
        .cli_json(&[
            "api",
            "create",
            "--identifier",
            CONTACTS,
            "--name",
            "Contacts",
            "--scope",
            "read:contacts create:contacts delete:contacts",
            "--json",
        ])
        .await;
    assert_eq!(api["identifier"], CONTACTS);
    assert_eq!(api["name"], "Contacts");
    assert_eq!(
        api["scopes"],
        serde_json::json!(["create:contacts", "delete:contacts", "read:contacts"])
    );
    assert_eq!(
        app.cli_json(&["api", "show", CONTACTS, "--json"]).await,
        api
    );
    assert_eq!(
        app.cli_json(&["api", "list", "--json"]).await,
        serde_json::json!([api])
    );
    app.cli_ok(&["api", "delete", CONTACTS]).await;
    assert_eq!(
        app.cli_json(&["api", "list", "--json"]).await,
        serde_json::json!([])
    );
}

async fn bad_input_exits_1_with_a_message(app: TestApp) {
    app.create_contacts_api().await;
    let create_client = ["client", "create", "--name", "x"];
    let create_api = |identifier, scope| {
        let args = ["api", "create", "--identifier", identifier];
        [&args[..], &["--name", "X", "--scope", scope]].concat()
    };
    // (the command line, a phrase its message must contain)
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["client", "show", "nope"], "no client with id `nope`"),
        (vec!["client", "delete", "nope"], "no client"),
        (vec!["client", "rotate-secret", "nope"], "no client"),
        (
            [
                &create_client[..],
                &["--redirect-uri", "http://evil.example.com/cb"],
            ]
            .concat(),
            "plain http",
        ),
        (
            [&create_client[..], &["--redirect-uri", "not a uri"]].concat(),
            "not an absolute URI",
        ),
        (
            [
                &create_client[..],
                &["--public", "--grant-type", "client_credentials"],
            ]
            .concat(),
            "public client may not use the client_credentials grant",
        ),
        (
            [&create_client[..], &["--grant-type", "magic"]].concat(),
            "unknown grant type",
        ),
        (create_client.to_vec(), "--redirect-uri"),
        (
            [
                &create_client[..],
                &[
                    "--grant-type",
                    "client_credentials",
                    "--audience",
                    "https://nope",
                ],
            ]
            .concat(),
            "no API with identifier",
        ),
        (
            [
                &create_client[..],
                &[
                    "--grant-type",
                    "client_credentials",
                    "--client-id",
                    "has space",
                ],
            ]
            .concat(),
            "--client-id",
        ),
        (create_api(CONTACTS, "a"), "already exists"),
        (create_api("relative", "a"), "absolute URI"),
        (create_api("https://x", "a  b"), "--scope"),
        (vec!["user", "show", "ghost"], "no user `ghost`"),
        (vec!["user", "create", "--username", "u"], "--password"),
        (vec!["keys", "rotate", "--alg", "HS256"], "HS256"),
        (vec!["no-such-command"], "no-such-command"),
    ];
    for (args, needle) in cases {
        fails(&app, &args, needle).await;
    }
    // Nothing half-made was left behind by the failures.
    assert_eq!(
        app.cli_json(&["client", "list", "--json"]).await,
        serde_json::json!([])
    );
}

async fn human_output_is_tables(app: TestApp) {
    app.create_contacts_api().await;
    let out = app
        .cli_ok(&[
            "client",
            "create",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--audience",
            CONTACTS,
        ])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("client_secret:"), "{text}");
    assert!(text.contains("cannot be shown again"), "{text}");
    let out = app.cli(&["client", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("CLIENT_ID"), "{text}");
    assert!(text.lines().nth(1).unwrap().contains("svc"));
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    for (shell, marker) in [
        ("bash", "_valet()"),
        ("zsh", "#compdef valet"),
        ("fish", "complete -c valet"),
    ] {
        let out = harness::clean_command()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(
            script.contains("rotate-secret"),
            "{shell} completes nested subcommands"
        );
    }
    let out = harness::clean_command()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unknown shell is a usage error"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = harness::clean_command()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for page in [
        "valet.1",
        "valet-serve.1",
        "valet-client-create.1",
        "valet-keys-rotate.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is roff"
        );
    }
}

#[test]
fn help_lists_every_subcommand() {
    let out = harness::clean_command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "serve",
        "migrate",
        "config",
        "client",
        "user",
        "api",
        "keys",
        "completions",
        "man",
        "janitor",
        "health",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "`valet --help` lacks {command}:\n{help}"
        );
    }
}

async fn health_probe_follows_readiness(app: TestApp) {
    let ok = app.cli(&["health", "--url", &app.url("/readyz")]).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = app
        .cli(&["health", "--url", &app.url("/no-such-page")])
        .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = app
        .cli(&[
            "health",
            "--url",
            &format!("http://127.0.0.1:{port}/readyz"),
        ])
        .await;
    assert_eq!(down.status.code(), Some(1), "nothing listening");
}
