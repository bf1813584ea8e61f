//! The authorization-code flow with PKCE in a real browser: headless Chromium, driven over
//! WebDriver by chromedriver, signs in on the login page (once wrongly, then rightly), allows
//! on the consent page, lands on the client's redirect URI, and the code is redeemed at
//! `/token`. Then the device authorization grant's `/device` page (RFC 8628 §3.3): the user
//! code typed into the real form, sign-in and consent, the page's confirmation, and the
//! device's poll answered with tokens; and `verification_uri_complete`, the code filled in.
//! Screenshots of the pages go to `screenshots/` at the crate root.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`); the test fails, never skips, without them.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use url::Url;

use crate::backend_tests;
use crate::device::{device_client, poll, start};
use crate::harness::fixtures::{PASSWORD, verify_with_jwks};
use crate::harness::flow::Pkce;
use crate::harness::{Backend, CONTACTS, TestApp, free_port, spawn};

backend_tests!(
    authorization_code_with_pkce_in_chromium,
    device_sign_in_at_the_device_page_in_chromium,
);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page, a redirect or chromedriver itself may take.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
const SUBMIT: &str = "form[method=post] button, form[method=post] input[type=submit]";

async fn authorization_code_with_pkce_in_chromium(backend: Backend) {
    let callback = CallbackServer::start().await;
    in_chromium(backend, "code", "browser flow", move |app, browser| {
        flow(app, browser, callback, backend)
    })
    .await;
}

async fn device_sign_in_at_the_device_page_in_chromium(backend: Backend) {
    in_chromium(backend, "device", "device flow", move |app, browser| {
        device_flow(app, browser, backend)
    })
    .await;
}

/// Start an app on `backend` and a Chromium session, and run `flow` with them. The flow runs
/// in its own task so that, whatever it asserts, the browser session is closed before the
/// test reports; if it fails, a screenshot of what the browser showed goes to
/// `failure-{label}-{backend}.png`.
async fn in_chromium<F, Fut>(backend: Backend, label: &str, what: &str, flow: F)
where
    F: FnOnce(Arc<TestApp>, Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let app = Arc::new(spawn(backend).await);
    let driver = ChromeDriver::start().await;
    let browser = driver.session().await;

    let outcome = tokio::spawn(flow(app.clone(), browser.clone())).await;
    if outcome.is_err() {
        // Best effort: what the browser showed when the flow failed.
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(
                screenshot_path(&format!("failure-{label}-{}.png", name(backend))),
                png,
            );
        }
    }
    let closed = browser.close().await;
    drop(driver);
    match outcome {
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the {what} did not finish: {e}"),
        Ok(()) => {}
    }
    closed.expect("close the browser session");
    eprintln!(
        "{what} on {}: {:.1} s",
        name(backend),
        started.elapsed().as_secs_f64()
    );
}

async fn flow(app: Arc<TestApp>, browser: Client, mut callback: CallbackServer, backend: Backend) {
    app.create_contacts_api().await;
    let client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "Contacts Web",
            "--public",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            &callback.redirect_uri,
            "--scope",
            "read:contacts create:contacts",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();
    assert!(
        client.get("client_secret").is_none_or(Value::is_null),
        "a public client has no secret: {client}"
    );
    let user_id = app.create_user("alice").await;

    // RFC 7636: a 43-character verifier of unreserved characters, S256 challenge.
    let Pkce {
        verifier,
        challenge,
    } = Pkce::new();
    assert_eq!(verifier.len(), 43);
    let state = random_urlsafe::<16>();
    let mut authorize = Url::parse(&app.url("/authorize")).expect("authorize URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &callback.redirect_uri)
        .append_pair("scope", "read:contacts")
        .append_pair("audience", CONTACTS)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    // The login page.
    browser
        .goto(authorize.as_str())
        .await
        .expect("open /authorize");
    wait_for_path(&browser, "/login").await;
    let username = wait_for(&browser, "input[name=username]").await;
    let password = wait_for(&browser, "input[name=password]").await;
    assert_eq!(
        browser
            .find_all(Locator::Css("form[method=post]"))
            .await
            .expect("find forms")
            .len(),
        1,
        "the login page has one POST form"
    );
    screenshot(&browser, &format!("login-{}.png", name(backend))).await;

    // A wrong password: the same page again, with an alert and the username kept.
    username
        .send_keys("alice")
        .await
        .expect("type the username");
    password
        .send_keys("wrong password")
        .await
        .expect("type a password");
    submit(&browser).await;
    wait_until_replaced(&browser, &username, "the login page after a wrong password").await;
    assert_eq!(
        browser.current_url().await.expect("URL").path(),
        "/login",
        "a wrong password stays on the login page"
    );
    let alert = wait_for(&browser, "[role=alert]").await;
    let message = alert.text().await.expect("alert text");
    assert!(
        !message.trim().is_empty() && alert.is_displayed().await.expect("alert displayed"),
        "the error is shown in the alert: {message:?}"
    );
    let username = wait_for(&browser, "input[name=username]").await;
    let password = wait_for(&browser, "input[name=password]").await;
    assert_eq!(
        username
            .prop("value")
            .await
            .expect("username value")
            .as_deref(),
        Some("alice"),
        "the typed username is kept"
    );
    assert_eq!(
        password
            .prop("value")
            .await
            .expect("password value")
            .as_deref(),
        Some(""),
        "the password is never sent back"
    );
    screenshot(&browser, &format!("login-error-{}.png", name(backend))).await;

    // The right password: on to the consent page.
    password
        .send_keys(PASSWORD)
        .await
        .expect("type the password");
    submit(&browser).await;
    wait_for_path(&browser, "/consent").await;
    let allow = wait_for(&browser, "button[name=decision][value=allow]").await;
    wait_for(&browser, "button[name=decision][value=deny]").await;
    let text = page_text(&browser).await;
    assert!(
        text.contains("read:contacts"),
        "the consent page shows the requested scope; it says:\n{text}"
    );
    screenshot(&browser, &format!("consent-{}.png", name(backend))).await;
    allow.click().await.expect("click allow");

    // The authorization response at the client's redirect URI (RFC 6749 §4.1.2, RFC 9207).
    let query = tokio::time::timeout(WAIT, callback.queries.recv())
        .await
        .unwrap_or_else(|_| panic!("no redirect to the client within {WAIT:?}"))
        .expect("callback channel open");
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert!(!params.contains_key("error"), "an error came back: {query}");
    assert_eq!(
        params.get("state"),
        Some(&state),
        "state is echoed: {query}"
    );
    assert_eq!(
        params.get("iss"),
        Some(&app.base),
        "iss is the issuer: {query}"
    );
    let code = params.get("code").expect("a code in the response");
    assert!(!code.is_empty());
    wait_for_path(&browser, "/callback").await;
    assert!(
        page_text(&browser)
            .await
            .contains("You can close this window")
    );

    // Redeem the code: a public client authenticates with nothing but the PKCE verifier.
    let response = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.redirect_uri.as_str()),
            ("client_id", client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let body: Value = response.json().await.expect("token JSON");
    assert_eq!(status, 200, "the code is redeemed: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read:contacts", "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    let (header, claims) = verify_with_jwks(&app, token, CONTACTS).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["sub"], user_id.as_str(), "sub is the user's id");
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], "read:contacts");
}

/// RFC 8628 §3.3 in Chromium: the device starts over HTTP; the person opens
/// `verification_uri`, types the user code, signs in, allows, and sees the page's
/// confirmation; the device's next poll gets tokens for her. Then `verification_uri_complete`
/// with the same browser: the code is filled in, and with her session and her consent
/// remembered, one click ends at the confirmation.
async fn device_flow(app: Arc<TestApp>, browser: Client, backend: Backend) {
    let alice = app.create_alice().await;
    let client = device_client(&app).await;
    let started = start(&app, &client, "openid profile").await;
    let user_code = started["user_code"].as_str().expect("user_code").to_owned();
    let device_code = started["device_code"].as_str().expect("device_code");
    let verification_uri = started["verification_uri"].as_str().expect("URI");
    assert_eq!(verification_uri, app.url("/device"));

    // The device polls while the person has not answered yet.
    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending")),
        "{body}"
    );

    // The code form, empty.
    browser
        .goto(verification_uri)
        .await
        .expect("open verification_uri");
    wait_for_path(&browser, "/device").await;
    let field = wait_for(&browser, "input[name=user_code]").await;
    assert_eq!(
        field.prop("value").await.expect("code value").as_deref(),
        Some(""),
        "verification_uri fills in no code"
    );
    let text = page_text(&browser).await;
    assert!(
        text.contains("Enter the code your device shows"),
        "the device page asks for the code; it says:\n{text}"
    );
    screenshot(&browser, &format!("device-{}.png", name(backend))).await;
    field
        .send_keys(&user_code)
        .await
        .expect("type the user code");
    assert_eq!(
        field.prop("value").await.expect("code value").as_deref(),
        Some(user_code.as_str()),
        "the typed code is in the field"
    );
    submit(&browser).await;

    // A known code leads to the login page, then to the consent page.
    wait_for_path(&browser, "/login").await;
    let username = wait_for(&browser, "input[name=username]").await;
    let password = wait_for(&browser, "input[name=password]").await;
    username
        .send_keys("alice")
        .await
        .expect("type the username");
    password
        .send_keys(PASSWORD)
        .await
        .expect("type the password");
    submit(&browser).await;
    wait_for_path(&browser, "/consent").await;
    let allow = wait_for(&browser, "button[name=decision][value=allow]").await;
    let text = page_text(&browser).await;
    assert!(
        text.contains("TV wants to access your account") && text.contains("profile"),
        "the consent page names the device's client and scope; it says:\n{text}"
    );
    screenshot(&browser, &format!("device-consent-{}.png", name(backend))).await;
    allow.click().await.expect("click allow");

    // The page's "done": the device is connected, and no code form is left.
    wait_until_replaced(&browser, &allow, "the consent page after allow").await;
    let done = wait_for_text(&browser, "Your device is connected").await;
    assert!(
        !done.contains("Enter the code"),
        "the confirmation shows no code form:\n{done}"
    );
    assert!(
        browser
            .find_all(Locator::Css("input[name=user_code]"))
            .await
            .expect("find inputs")
            .is_empty(),
        "the confirmation has no code field"
    );
    screenshot(&browser, &format!("device-done-{}.png", name(backend))).await;

    // The device's next poll gets alice's tokens, once.
    let (status, tokens) = poll(&app, &client, device_code).await;
    assert_eq!(
        status, 200,
        "the approved device code is redeemed: {tokens}"
    );
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    let id_token = tokens["id_token"].as_str().expect("an id_token for openid");
    let (_, claims) = verify_with_jwks(&app, id_token, &client.id).await;
    assert_eq!(claims["sub"], alice.as_str(), "the person who allowed");
    assert_eq!(claims["name"], "Alice Liddell");
    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "spent: {body}"
    );

    // `verification_uri_complete`: the form arrives with this device's code in it.
    let second = start(&app, &client, "openid profile").await;
    let second_code = second["user_code"].as_str().expect("user_code");
    assert_ne!(second_code, user_code);
    let complete = second["verification_uri_complete"].as_str().expect("URI");
    browser
        .goto(complete)
        .await
        .expect("open verification_uri_complete");
    wait_for_path(&browser, "/device").await;
    let field = wait_for(&browser, "input[name=user_code]").await;
    assert_eq!(
        field.prop("value").await.expect("code value").as_deref(),
        Some(second_code),
        "verification_uri_complete fills in the code"
    );
    submit(&browser).await;
    // Signed in already, and these scopes allowed before: straight to the confirmation.
    wait_until_replaced(&browser, &field, "the device page after its code").await;
    let url = browser.current_url().await.expect("URL");
    assert_eq!(url.path(), "/device", "no login or consent page on the way");
    wait_for_text(&browser, "Your device is connected").await;
    let (status, tokens) = poll(&app, &client, second["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().expect("an id_token");
    let (_, claims) = verify_with_jwks(&app, id_token, &client.id).await;
    assert_eq!(claims["sub"], alice.as_str());
}

/// chromedriver on a free local port, killed (with the browsers it started) on drop.
struct ChromeDriver {
    child: Child,
    url: String,
    /// `TMPDIR` of chromedriver and Chromium: their profile and singleton-socket directories
    /// (which Chromium leaves behind even after a clean quit) go away with it.
    _tmp: tempfile::TempDir,
}

impl ChromeDriver {
    async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser test needs Chromium and chromedriver \
                 (apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let tmp = tempfile::tempdir().expect("temp dir for the browser");
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .env("TMPDIR", tmp.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so that drop can end the browsers with it.
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _tmp: tmp,
        };
        driver.wait_ready().await;
        driver
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited before it was ready: {status}");
            }
            let status = http.get(format!("{}/status", self.url)).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within 10 s at {}",
                self.url
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn session(&self) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    "--window-size=1024,900",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("start a Chromium session through chromedriver: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client's redirect URI: `GET /callback` hands its raw query to the test.
struct CallbackServer {
    redirect_uri: String,
    queries: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackServer {
    async fn start() -> Self {
        let (tx, queries) = mpsc::unbounded_channel::<String>();
        let router = axum::Router::new().route(
            "/callback",
            axum::routing::get(
                move |axum::extract::RawQuery(query): axum::extract::RawQuery| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(query.unwrap_or_default());
                        axum::response::Html(
                            "<!doctype html><title>Contacts Web</title>\
                         <p>You can close this window.</p>",
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the redirect URI server");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("redirect URI server");
        });
        Self {
            redirect_uri: format!("http://{addr}/callback"),
            queries,
            task,
        }
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// `N` random bytes as base64url: only unreserved characters.
fn random_urlsafe<const N: usize>() -> String {
    let bytes: [u8; N] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The element matching `css`, once the page has one.
async fn wait_for(browser: &Client, css: &str) -> Element {
    match browser
        .wait()
        .at_most(WAIT)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!(
            "no `{css}` on {} ({e}); the page says:\n{}",
            current_url(browser).await,
            page_text(browser).await
        ),
    }
}

/// Wait until the page's visible text contains `needle`; the text.
async fn wait_for_text(browser: &Client, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = page_text(browser).await;
        if text.contains(needle) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!(
                "`{needle}` did not appear within {WAIT:?} on {}, which says:\n{text}",
                current_url(browser).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until the browser is on `path` of some origin.
async fn wait_for_path(browser: &Client, path: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let url = browser.current_url().await.expect("current URL");
        if url.path() == path {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "the browser did not reach {path} within {WAIT:?}: it is at {url}, which says:\n{}",
                page_text(browser).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until `old` belongs to a page that has been replaced (a form post that lands on
/// the same URL).
async fn wait_until_replaced(browser: &Client, old: &Element, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match old.tag_name().await {
            Err(e) if e.is_stale_element_reference() || e.is_no_such_element() => return,
            // Chromium sometimes reports a node of a replaced document this way instead of
            // as a stale element reference, when the lookup races the navigation.
            Err(e) if e.to_string().contains("does not belong to the document") => return,
            Err(e) => panic!("{what}: {e}"),
            Ok(_) => {}
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: the page was not replaced within {WAIT:?}; it says:\n{}",
                page_text(browser).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn submit(browser: &Client) {
    browser
        .find(Locator::Css(SUBMIT))
        .await
        .expect("the form's submit button")
        .click()
        .await
        .expect("click submit");
}

/// The page's visible text (for assertions and failure messages).
async fn page_text(browser: &Client) -> String {
    let body = browser.find(Locator::Css("body")).await;
    match body {
        Ok(body) => body
            .text()
            .await
            .unwrap_or_else(|e| format!("<no text: {e}>")),
        Err(e) => format!("<no body: {e}>"),
    }
}

async fn current_url(browser: &Client) -> String {
    browser.current_url().await.map_or_else(
        |e: CmdError| format!("<unknown URL: {e}>"),
        |u| u.to_string(),
    )
}

fn screenshot_path(file: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("create screenshots/");
    dir.join(file)
}

async fn screenshot(browser: &Client, file: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let path = screenshot_path(file);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
