//! Every token-endpoint error of RFC 6749 §5.2 that the client_credentials grant can meet,
//! each with its status, `error` code and headers.

use serde_json::Value;

use crate::harness::fixtures::{Creds, NewClient};
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

async fn setup(app: &TestApp) -> Creds {
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

/// Form fields of a token request.
type Fields = &'static [(&'static str, &'static str)];

async fn malformed_requests_are_invalid_request(app: TestApp) {
    let client = setup(&app).await;
    let auth = || Some(basic_header(&client.id, &client.secret));

    let good = b"grant_type=client_credentials&audience=https%3A%2F%2Fcontacts.example.com";
    let oversized = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    );
    // Basic and a client_secret in the body at once (RFC 6749 §2.3).
    let both = format!(
        "grant_type=client_credentials&client_secret={}",
        client.secret
    );
    // (Content-Type, body, a word the error_description must contain)
    let cases: [(Option<&str>, &[u8], &str); 7] = [
        (Some("application/json"), good, ""),
        (None, good, ""),
        (
            FORM,
            b"grant_type=client_credentials&grant_type=client_credentials",
            "grant_type",
        ),
        (
            FORM,
            b"audience=https%3A%2F%2Fcontacts.example.com",
            "grant_type",
        ),
        (FORM, oversized.as_bytes(), ""),
        (FORM, both.as_bytes(), ""),
        // No audience and no default audience.
        (FORM, b"grant_type=client_credentials", ""),
    ];
    for (content_type, body, named) in cases {
        let r = raw(&app, content_type, auth(), body.to_vec()).await;
        let e = expect_error(r, 400, "invalid_request", false).await;
        let description = e["error_description"].as_str().unwrap();
        assert!(description.contains(named), "{e}");
    }

    // Nothing was lost: the same client still gets a token.
    let ok = app.client_credentials(&client, CONTACTS).await;
    assert_eq!(ok.status(), 200);
}

async fn failed_client_authentication_is_invalid_client(app: TestApp) {
    let client = setup(&app).await;
    let (id, secret) = (client.id.as_str(), client.secret.as_str());
    let form = [("grant_type", "client_credentials"), ("audience", CONTACTS)];

    let r = app.token(Some((id, "wrong-secret")), &form).await;
    expect_error(r, 401, "invalid_client", true).await;
    let r = app.token(Some(("no-such-client", secret)), &form).await;
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
                ("client_id", id),
                ("client_secret", "nope"),
            ],
        )
        .await;
    expect_error(r, 401, "invalid_client", true).await;
    // A confidential client that sends no secret at all.
    let r = app
        .token(
            None,
            &[("grant_type", "client_credentials"), ("client_id", id)],
        )
        .await;
    expect_error(r, 401, "invalid_client", true).await;
    // No client identification whatsoever.
    let r = app.token(None, &form).await;
    expect_error(r, 401, "invalid_client", true).await;
}

async fn grant_and_scope_errors(app: TestApp) {
    let client = setup(&app).await;
    // (the form besides the audience, the error, a word its error_description must contain)
    let cases: [(Fields, &str, &str); 5] = [
        (
            &[("grant_type", "urn:example:magic")],
            "unsupported_grant_type",
            "",
        ),
        (&[("grant_type", "implicit")], "unsupported_grant_type", ""),
        (
            &[
                ("grant_type", "client_credentials"),
                ("scope", "delete:contacts"),
            ],
            "invalid_scope",
            "delete:contacts",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read:contacts  x"),
            ],
            "invalid_scope",
            "",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "openid")],
            "invalid_scope",
            "",
        ),
    ];
    for (fields, error, named) in cases {
        let form = [fields, &[("audience", CONTACTS)]].concat();
        let r = app.token(Some(client.basic()), &form).await;
        let e = expect_error(r, 400, error, false).await;
        let description = e["error_description"].as_str().unwrap();
        assert!(description.contains(named), "{e}");
    }

    // A client registered without client_credentials asks for it.
    let code_client = NewClient::web("https://app.example.com/cb", "");
    let code_client = app.create_web_client(code_client).await.creds();
    let r = app
        .token(
            Some(code_client.basic()),
            &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
        )
        .await;
    expect_error(r, 400, "unauthorized_client", false).await;
}

async fn target_errors(app: TestApp) {
    let client = setup(&app).await;
    app.create_api("https://billing.example.com", "Billing", "read:invoices")
        .await;
    let cases = [
        // Unknown.
        &[("audience", "https://unknown.example.com")][..],
        // Known, but not one the client may use.
        &[("audience", "https://billing.example.com")],
        // Two targets that disagree.
        &[
            ("audience", CONTACTS),
            ("resource", "https://billing.example.com"),
        ],
    ];
    for target in cases {
        let form = [&[("grant_type", "client_credentials")][..], target].concat();
        let r = app.token(Some(client.basic()), &form).await;
        expect_error(r, 400, "invalid_target", false).await;
    }
}

async fn garbage_never_breaks_the_server(app: TestApp) {
    let client = setup(&app).await;
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
            Some(basic_header(&client.id, &client.secret)),
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
