//! `/metrics` in the Prometheus text format, with the numbers a flow actually produced.

use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

store_tests!(metrics_count_what_happened);

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_what_happened(app: TestApp) {
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    for _ in 0..2 {
        app.service_token(&service, CONTACTS).await;
    }
    let password_app = app.create_password_client().await;
    app.create_user("alice").await;
    assert_eq!(
        app.password_grant(&password_app, "alice", "wrong", None)
            .await
            .status(),
        400
    );
    assert_eq!(app.get("/no/such/page").await.status(), 404);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let token_ok = r#"valet_http_requests_total{route="/token",status="200"}"#;
    assert_eq!(value(&text, token_ok), Some(2.0), "{text}");
    assert_eq!(
        value(
            &text,
            r#"valet_http_requests_total{route="/token",status="400"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(
                r#"valet_tokens_issued_total{{grant_type="client_credentials",audience="{CONTACTS}"}}"#
            )
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&text, "valet_login_failures_total"), Some(1.0));
    assert_eq!(
        value(
            &text,
            r#"valet_http_requests_total{route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("/no/such/page"),
        "raw paths never become labels"
    );
    assert_eq!(
        value(
            &text,
            r#"valet_http_request_duration_seconds_count{route="/token"}"#
        ),
        Some(3.0)
    );
    assert!(value(&text, "valet_store_pool_connections").is_some_and(|n| n >= 1.0));
    assert!(value(&text, "valet_store_ping_seconds").is_some_and(|s| s > 0.0 && s < 5.0));
    assert!(
        value(&text, "valet_signing_key_age_seconds").is_some_and(|s| (0.0..60.0).contains(&s))
    );
}
