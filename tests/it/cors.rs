//! CORS: public documents for any origin; `/token` and `/revoke` only for origins the client
//! (or the config) allows; never on the authorization endpoint or the pages.

use crate::backend_tests;
use crate::harness::fixtures::NewClient;
use crate::harness::{self, Backend, CONTACTS, TestApp};

backend_tests!(cors_follows_each_clients_allowed_origins);

const SPA: &str = "https://spa.example.com";
const EVERYWHERE: &str = "https://console.example.com";

fn acao(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn revoke_from(app: &TestApp, origin: &str, client_id: &str) -> reqwest::Response {
    app.http
        .post(app.url("/revoke"))
        .header("origin", origin)
        .form(&[("client_id", client_id), ("token", "whatever")])
        .send()
        .await
        .unwrap()
}

async fn cors_follows_each_clients_allowed_origins(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.cors.allowed_origins = vec![EVERYWHERE.into()]
    })
    .await;
    app.create_contacts_api().await;
    let spa = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "spa",
            "--public",
            "--redirect-uri",
            "https://spa.example.com/cb",
            "--allowed-origin",
            SPA,
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    assert_eq!(spa["allowed_origins"], serde_json::json!([SPA]));
    let spa = spa["client_id"].as_str().unwrap();
    let other = NewClient::web("https://o.example/cb", "")
        .public()
        .without_audience();
    let other = app.create_web_client(other).await;
    let other = other.client_id.as_str();
    let bad = app
        .cli(&[
            "client",
            "create",
            "--name",
            "x",
            "--allowed-origin",
            "https://spa.example.com/app",
        ])
        .await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not an origin"),
        "an origin has no path"
    );

    // Preflight: any origin some client allows; nothing for strangers.
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight(SPA).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(acao(&ok).as_deref(), Some(SPA));
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(acao(&refused), None);

    // The real request: the authenticated client's own origins, plus the configured ones.
    assert_eq!(
        acao(&revoke_from(&app, SPA, spa).await).as_deref(),
        Some(SPA)
    );
    assert_eq!(
        acao(&revoke_from(&app, SPA, other).await),
        None,
        "SPA's origin is not other's"
    );
    assert_eq!(
        acao(&revoke_from(&app, EVERYWHERE, other).await).as_deref(),
        Some(EVERYWHERE)
    );
    let token = app
        .http
        .post(app.url("/token"))
        .header("origin", SPA)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", spa),
            ("code", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 400);
    assert_eq!(
        acao(&token).as_deref(),
        Some(SPA),
        "the app can read its error"
    );

    // Public documents: any origin.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        let doc = app
            .http
            .get(app.url(path))
            .header("origin", "https://anyone.example")
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&doc).as_deref(), Some("*"), "{path}");
    }
    // Never on the pages or the authorization endpoint.
    for path in [
        format!("/authorize?client_id={spa}&response_type=code"),
        "/login?request=x".into(),
        "/logout".into(),
    ] {
        let page = app
            .http
            .get(app.url(&path))
            .header("origin", SPA)
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&page), None, "{path}");
    }
}
