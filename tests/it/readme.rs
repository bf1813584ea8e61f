//! The README's tour, run as written (only the addresses differ), so it cannot drift.

use crate::contacts_example::serve_contacts;
use crate::harness::fixtures::verify_with_jwks;
use crate::harness::{TEST_SECRET, TestApp, valet_bin};
use crate::store_tests;

store_tests!(readme_tour_works);

/// The shell block between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {name}:start -->"))
        .expect("start marker");
    let end = readme
        .find(&format!("<!-- {name}:end -->"))
        .expect("end marker");
    let block = &readme[start..end];
    let code_start = block.find("```sh\n").expect("sh block") + "```sh\n".len();
    let code_end = block[code_start..].find("```").expect("block end") + code_start;
    block[code_start..code_end].to_owned()
}

async fn readme_tour_works(app: TestApp) {
    // The tour's Contacts API (`cargo run --example contacts_api` in the README), in-process.
    let contacts_api = serve_contacts(&app, None).await;
    let script = [block("tour"), block("contacts"), block("grants")]
        .join("\n")
        .replace("http://localhost:8080", &app.base)
        .replace("http://127.0.0.1:3001", &contacts_api);
    assert!(
        script.contains("valet client create"),
        "the tour provisions a client"
    );
    let bin_dir = valet_bin().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(app.dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", app.dir.path())
        .env("VALET_DATABASE_URL", &app.database_url)
        .env("VALET_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tour failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let token: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(app.dir.path().join("token.json")).unwrap())
            .unwrap();
    assert_eq!(token["scope"], "read:contacts");
    let jwt = token["access_token"].as_str().unwrap();
    verify_with_jwks(&app, jwt, crate::harness::CONTACTS).await;

    let text = |name: &str| std::fs::read_to_string(app.dir.path().join(name)).unwrap();
    let read = |name: &str| -> serde_json::Value { serde_json::from_str(&text(name)).unwrap() };

    // The tour's last stop: the Contacts API with the client-credentials token.
    let contacts = read("contacts.json");
    let names: Vec<&str> = contacts
        .as_array()
        .expect("a list of contacts")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ada Lovelace", "Alan Turing"]);
    let forbidden = text("forbidden.txt");
    assert!(forbidden.starts_with("HTTP/1.1 403"), "{forbidden}");
    assert!(
        forbidden.contains(r#"error="insufficient_scope", scope="create:contacts""#),
        "{forbidden}"
    );
    let invalid = text("invalid.txt");
    assert!(invalid.starts_with("HTTP/1.1 401"), "{invalid}");
    assert!(invalid.contains(r#"error="invalid_token""#), "{invalid}");

    let active = read("active.json");
    assert_eq!(active["active"], true);
    assert_eq!(
        active["scope"], "read:contacts",
        "the refresh narrowed the scope"
    );
    assert_eq!(active["username"], "alice");
    assert_eq!(read("revoked.json"), serde_json::json!({"active": false}));
}
