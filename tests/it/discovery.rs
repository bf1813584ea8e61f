//! RFC 8414 metadata, OpenID Connect Discovery, JWKS, health and readiness.

use serde_json::Value;

use crate::harness::TestApp;
use crate::store_tests;

store_tests!(
    metadata_documents_describe_what_is_supported,
    jwks_publishes_public_keys_only,
    health_and_readiness
);

async fn metadata_documents_describe_what_is_supported(app: TestApp) {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = app.get_json(path).await;
        // RFC 8414 §3.3: the issuer is exactly the one tokens carry, which is the server's base.
        assert_eq!(doc["issuer"], app.base, "{path}");
        assert_eq!(doc["token_endpoint"], app.url("/token"), "{path}");
        assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"), "{path}");
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!([
                "authorization_code",
                "implicit",
                "password",
                "client_credentials",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code"
            ]),
            "{path}"
        );
        let methods = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        for method in ["client_secret_basic", "client_secret_post", "none"] {
            assert!(methods.iter().any(|m| m == method), "{path} lacks {method}");
        }
        assert!(doc["response_types_supported"].is_array(), "{path}");
        // UserInfo and logout are OpenID Connect's: in its document only.
        let openid = path.ends_with("openid-configuration");
        assert_eq!(
            doc.get("end_session_endpoint").cloned(),
            openid.then(|| Value::from(app.url("/logout"))),
            "{path}"
        );
        let userinfo = openid.then(|| app.url("/userinfo"));
        assert_eq!(
            doc.get("userinfo_endpoint").cloned(),
            userinfo.map(Value::from),
            "{path}"
        );
        assert_eq!(doc["revocation_endpoint"], app.url("/revoke"), "{path}");
        assert_eq!(
            doc["introspection_endpoint"],
            app.url("/introspect"),
            "{path}"
        );
        assert_eq!(
            doc["authorization_endpoint"],
            app.url("/authorize"),
            "{path}"
        );
        // The documents it points to are really there.
        let jwks = app
            .http
            .get(doc["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(jwks.status(), 200);
    }
}

async fn jwks_publishes_public_keys_only(app: TestApp) {
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "one key on a fresh store");
    let key = keys[0].as_object().unwrap();
    for member in ["kid", "kty", "alg", "use"] {
        assert!(key.contains_key(member), "missing {member}");
    }
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            !key.contains_key(private),
            "JWKS leaks private member {private}"
        );
    }
    // It is a key jsonwebtoken accepts.
    let parsed: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    jsonwebtoken::DecodingKey::from_jwk(&parsed.keys[0]).unwrap();
}

async fn health_and_readiness(app: TestApp) {
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("x-request-id"));
}
