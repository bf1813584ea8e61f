//! Every token-endpoint error of RFC 6749 §5.2 that the client_credentials grant can meet,
//! each with its status, `error` code and headers.

use serde_json::Value;

use crate::harness::{CONTACTS, TestApp, basic_header};
use crate::store_tests;

store_tests!(
    malformed_requests_are_invalid_request,
    failed_client_authentication_is_invalid_client,
    grant_and_scope_errors,
    target_errors,
    garbage_never_breaks_the_server
);

/// Assert the wire: status, `error`, no-store, and whether a Basic challenge came back.
async fn expect_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
    basic_challenge: bool,
) -> Value {
    assert_eq!(response.status(), status, "expected {error}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        basic_challenge.then(|| "Basic realm=\"valet\"".to_owned()),
        "WWW-Authenticate for {error}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
}

async fn setup(app: &TestApp) -> (String, String) {
    app.create_contacts_api().await;
    app.create_service_client("read:contacts").await
}

async fn raw(
    app: &TestApp,
    content_type: Option<&str>,
    auth: Option<String>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app.http.post(app.url("/token")).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap()
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

async fn malformed_requests_are_invalid_request(app: TestApp) {
    let (id, secret) = setup(&app).await;
    let auth = || Some(basic_header(&id, &secret));

    let body =
        b"grant_type=client_credentials&audience=https%3A%2F%2Fcontacts.example.com".to_vec();
    let r = raw(&app, Some("application/json"), auth(), body.clone()).await;
    expect_error(r, 400, "invalid_request", false).await;
    let r = raw(&app, None, auth(), body.clone()).await;
    expect_error(r, 400, "invalid_request", false).await;

    let r = raw(
        &app,
        FORM,
        auth(),
        b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
    )
    .await;
    let e = expect_error(r, 400, "invalid_request", false).await;
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("grant_type")
    );

    let r = raw(
        &app,
        FORM,
        auth(),
        b"audience=https%3A%2F%2Fcontacts.example.com".to_vec(),
    )
    .await;
    let e = expect_error(r, 400, "invalid_request", false).await;
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("grant_type")
    );

    let oversized = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    )
    .into_bytes();
    let r = raw(&app, FORM, auth(), oversized).await;
    expect_error(r, 400, "invalid_request", false).await;

    // Basic and a client_secret in the body at once (RFC 6749 §2.3).
    let both = format!("grant_type=client_credentials&client_secret={secret}").into_bytes();
    let r = raw(&app, FORM, auth(), both).await;
    expect_error(r, 400, "invalid_request", false).await;

    // No audience and no default audience.
    let r = raw(
        &app,
        FORM,
        auth(),
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    expect_error(r, 400, "invalid_request", false).await;

    // Nothing was lost: the same client still gets a token.
    let ok = app
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
        )
        .await;
    assert_eq!(ok.status(), 200);
}

async fn failed_client_authentication_is_invalid_client(app: TestApp) {
    let (id, secret) = setup(&app).await;
    let form = [("grant_type", "client_credentials"), ("audience", CONTACTS)];

    let r = app.token(Some((&id, "wrong-secret")), &form).await;
    expect_error(r, 401, "invalid_client", true).await;
    let r = app.token(Some(("no-such-client", &secret)), &form).await;
    expect_error(r, 401, "invalid_client", true).await;
    let r = raw(
        &app,
        FORM,
        Some("Basic %%%not-base64".into()),
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    expect_error(r, 401, "invalid_client", true).await;

    // client_secret_post failures carry the challenge too: RFC 7235 §3.1 wants one on every
    // 401 (finding 17 of the security review; this asserted its absence before).
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "nope"),
            ],
        )
        .await;
    expect_error(r, 401, "invalid_client", true).await;
    // A confidential client that sends no secret at all.
    let r = app
        .token(
            None,
            &[("grant_type", "client_credentials"), ("client_id", &id)],
        )
        .await;
    expect_error(r, 401, "invalid_client", true).await;
    // No client identification whatsoever.
    let r = app.token(None, &form).await;
    expect_error(r, 401, "invalid_client", true).await;
}

async fn grant_and_scope_errors(app: TestApp) {
    let (id, secret) = setup(&app).await;
    let auth = Some((id.as_str(), secret.as_str()));

    let r = app
        .token(
            auth,
            &[("grant_type", "urn:example:magic"), ("audience", CONTACTS)],
        )
        .await;
    expect_error(r, 400, "unsupported_grant_type", false).await;
    let r = app
        .token(auth, &[("grant_type", "implicit"), ("audience", CONTACTS)])
        .await;
    expect_error(r, 400, "unsupported_grant_type", false).await;

    let r = app
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("scope", "delete:contacts"),
            ],
        )
        .await;
    let e = expect_error(r, 400, "invalid_scope", false).await;
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("delete:contacts"),
        "{e}"
    );
    let r = app
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("scope", "read:contacts  x"),
            ],
        )
        .await;
    expect_error(r, 400, "invalid_scope", false).await;
    let r = app
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("scope", "openid"),
            ],
        )
        .await;
    expect_error(r, 400, "invalid_scope", false).await;

    // A client registered without client_credentials asks for it.
    let code_client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "web",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    let (cid, csecret) = (
        code_client["client_id"].as_str().unwrap(),
        code_client["client_secret"].as_str().unwrap(),
    );
    let r = app
        .token(
            Some((cid, csecret)),
            &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
        )
        .await;
    expect_error(r, 400, "unauthorized_client", false).await;
}

async fn target_errors(app: TestApp) {
    let (id, secret) = setup(&app).await;
    let auth = Some((id.as_str(), secret.as_str()));
    let r = app
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://unknown.example.com"),
            ],
        )
        .await;
    expect_error(r, 400, "invalid_target", false).await;
    app.cli_json(&[
        "api",
        "create",
        "--identifier",
        "https://billing.example.com",
        "--name",
        "Billing",
        "--scope",
        "read:invoices",
        "--json",
    ])
    .await;
    let r = app
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://billing.example.com"),
            ],
        )
        .await;
    expect_error(r, 400, "invalid_target", false).await;
    let r = app
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("resource", "https://billing.example.com"),
            ],
        )
        .await;
    expect_error(r, 400, "invalid_target", false).await;
}

async fn garbage_never_breaks_the_server(app: TestApp) {
    let (id, secret) = setup(&app).await;
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x80],
        b"%%%%&&&===".to_vec(),
        b"grant_type=%ZZ".to_vec(),
        b"=&=&=".to_vec(),
        "grant_type=client_credentials&scope=\u{1F600}"
            .as_bytes()
            .to_vec(),
        b"grant_type=client_credentials&audience=%00".to_vec(),
    ];
    for body in bodies {
        for auth in [
            None,
            Some(basic_header(&id, &secret)),
            Some("Basic".into()),
            Some("Bearer x".into()),
        ] {
            let r = raw(&app, FORM, auth, body.clone()).await;
            let status = r.status().as_u16();
            assert!((400..500).contains(&status), "body {body:?} gave {status}");
            let json: Value = r.json().await.unwrap();
            assert!(json["error"].is_string());
        }
    }
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
