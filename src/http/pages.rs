//! Valet's own HTML pages (SPEC §4, §7): login, consent, logout, signed out, errors, and the
//! OAuth 2.0 Form Post Response Mode page.
//!
//! Templates are minijinja, compiled once by [`Pages::load`] from the built-in `templates/`
//! directory, each one replaceable by a file of the same name in `ui.templates_dir`. Auto-escaping
//! is on for every `.html` template; `style.css` is rendered on its own (with the accent colour)
//! and handed to `base.html` as a safe string, inlined under the response's CSP nonce.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::value::merge_maps;
use minijinja::{AutoEscape, Environment, Output, State, Value, context, escape_formatter};
use serde::Serialize;

use crate::config::UiSettings;
use crate::crypto::{SecretError, random_bytes};

/// Every template, by file name; each may be replaced by a file in `ui.templates_dir`.
pub const TEMPLATE_NAMES: [&str; 9] = [
    "base.html",
    "login.html",
    "consent.html",
    "logout.html",
    "device.html",
    "signed_out.html",
    "error.html",
    "form_post.html",
    "style.css",
];

/// The built-in templates, in the order of [`TEMPLATE_NAMES`].
const BUILT_IN: [(&str, &str); 9] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("consent.html", include_str!("../../templates/consent.html")),
    ("logout.html", include_str!("../../templates/logout.html")),
    ("device.html", include_str!("../../templates/device.html")),
    (
        "signed_out.html",
        include_str!("../../templates/signed_out.html"),
    ),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "form_post.html",
        include_str!("../../templates/form_post.html"),
    ),
    ("style.css", include_str!("../../templates/style.css")),
];

const STYLE: &str = "style.css";

/// Why the pages could not be loaded at startup; every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PageLoadError {
    #[error("ui.templates_dir {}: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },
    #[error("template {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// `origin` is the override's path, or `built-in templates/NAME`.
    #[error("template {origin}: {message}")]
    Template {
        name: String,
        origin: String,
        message: String,
    },
    #[error("ui.accent_color {0:?} is not a CSS colour of the form #rgb or #rrggbb")]
    AccentColor(String),
}

/// The compiled pages. Loaded once at startup; cheap to clone. No file I/O after [`Pages::load`].
#[derive(Clone)]
pub struct Pages {
    inner: Arc<Inner>,
}

struct Inner {
    env: Environment<'static>,
    /// Where each template came from, for messages.
    origins: BTreeMap<&'static str, String>,
    product_name: String,
    logo_url: Option<String>,
    accent_color: String,
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("product_name", &self.inner.product_name)
            .field("templates", &self.inner.origins)
            .finish_non_exhaustive()
    }
}

/// A page to render, with what it shows.
#[derive(Debug, Clone)]
pub enum Page {
    Login(LoginView),
    Consent(ConsentView),
    Logout(LogoutView),
    Device(DeviceView),
    SignedOut,
    Error(ErrorView),
    FormPost(FormPostView),
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    pub client_name: String,
    /// The pending-request id, posted back in the hidden input `request`.
    pub request: String,
    /// Posted back in the hidden input `csrf`.
    pub csrf: String,
    /// Pre-filled value of the username field, kept after a failure.
    pub username: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    pub client_name: String,
    /// For a client that registered itself (so its name is its own claim): the host the
    /// answer goes back to, shown beside a warning.
    pub unverified_host: Option<String>,
    pub request: String,
    pub csrf: String,
    /// Who is signed in.
    pub username: String,
    pub scopes: Vec<ScopeView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScopeView {
    /// Shown verbatim, e.g. `read:contacts`.
    pub name: String,
    /// The API the scope belongs to, e.g. "Contacts"; `None` for OpenID scopes.
    pub api_name: Option<String>,
    /// e.g. for `openid`: "Know who you are".
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogoutView {
    pub csrf: String,
    /// `None` when nobody is signed in.
    pub username: Option<String>,
    /// The app that asked for the sign-out (RP-Initiated Logout), if one did.
    pub client_name: Option<String>,
    /// Its request, carried through the form unchanged (the CSRF token is bound to it).
    pub request: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    pub title: String,
    /// For the person looking at the page.
    pub message: String,
    /// Lines for the app developer, e.g. "redirect_uri sent: …", "registered: …".
    pub developer_detail: Vec<String>,
}

/// `/device` (RFC 8628 §3.3): the form to type the code into, or how a sign-in ended.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub csrf: String,
    /// What to fill the field with (from `verification_uri_complete`, or typed before).
    pub user_code: String,
    pub error: Option<String>,
    /// The sign-in is answered: what to tell the person, and no form.
    pub done: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FormPostView {
    pub redirect_uri: String,
    /// The OAuth response parameters, one hidden input each.
    pub fields: Vec<(String, String)>,
}

impl Page {
    fn template(&self) -> &'static str {
        match self {
            Page::Login(_) => "login.html",
            Page::Consent(_) => "consent.html",
            Page::Logout(_) => "logout.html",
            Page::Device(_) => "device.html",
            Page::SignedOut => "signed_out.html",
            Page::Error(_) => "error.html",
            Page::FormPost(_) => "form_post.html",
        }
    }

    fn view(&self) -> Value {
        match self {
            Page::Login(view) => Value::from_serialize(view),
            Page::Consent(view) => Value::from_serialize(view),
            Page::Logout(view) => Value::from_serialize(view),
            Page::Device(view) => Value::from_serialize(view),
            Page::SignedOut => context! {},
            Page::Error(view) => Value::from_serialize(view),
            Page::FormPost(view) => Value::from_serialize(view),
        }
    }

    /// Only the form_post page runs a script: the one that submits its form.
    fn runs_script(&self) -> bool {
        matches!(self, Page::FormPost(_))
    }
}

#[derive(Debug, thiserror::Error)]
enum RenderError {
    #[error("no nonce: {0}")]
    Nonce(#[from] SecretError),
    #[error("{0}")]
    Template(#[from] minijinja::Error),
    #[error("header value: {0}")]
    Header(#[from] axum::http::header::InvalidHeaderValue),
}

impl Pages {
    /// Compile every template: the file of the same name in `ui.templates_dir` when present,
    /// else the built-in one. A syntax error in any template fails here, naming the file; then
    /// every page is rendered with sample data, so that an override which uses an unknown
    /// filter or otherwise breaks at render time fails at startup too.
    pub fn load(ui: &UiSettings) -> Result<Self, PageLoadError> {
        if !is_hex_colour(&ui.accent_color) {
            return Err(PageLoadError::AccentColor(ui.accent_color.clone()));
        }
        if let Some(dir) = &ui.templates_dir {
            check_dir(dir)?;
        }

        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_formatter(html_formatter);
        let mut origins = BTreeMap::new();
        for (name, built_in) in BUILT_IN {
            let (source, origin) = match &ui.templates_dir {
                Some(dir) => match read_override(&dir.join(name))? {
                    Some(found) => found,
                    None => (built_in.to_owned(), format!("built-in templates/{name}")),
                },
                None => (built_in.to_owned(), format!("built-in templates/{name}")),
            };
            if let Err(err) = env.add_template_owned(name, source) {
                return Err(PageLoadError::Template {
                    name: name.to_owned(),
                    origin,
                    message: err.to_string(),
                });
            }
            origins.insert(name, origin);
        }

        let pages = Self {
            inner: Arc::new(Inner {
                env,
                origins,
                product_name: ui.product_name.clone(),
                logo_url: ui.logo_url.clone(),
                accent_color: ui.accent_color.clone(),
            }),
        };
        for page in sample_pages() {
            if let Err(err) = pages.render_html(&page, "c2FtcGxlLW5vbmNl") {
                let name = err.name().unwrap_or(page.template()).to_owned();
                let origin = pages
                    .inner
                    .origins
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or_else(|| name.clone());
                return Err(PageLoadError::Template {
                    name,
                    origin,
                    message: format!("fails to render: {err}"),
                });
            }
        }
        Ok(pages)
    }

    /// Render `page` with `status` and the security headers (CSP with a fresh nonce, no
    /// framing, no referrer, no caching). A render error becomes a plain 500 and is logged.
    pub fn render(&self, status: StatusCode, page: Page) -> Response {
        match self.try_render(status, &page) {
            Ok(response) => response,
            Err(err) => {
                tracing::error!(page = page.template(), error = %err, "page rendering failed");
                let mut response =
                    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                );
                security_headers(headers);
                response
            }
        }
    }

    fn try_render(&self, status: StatusCode, page: &Page) -> Result<Response, RenderError> {
        let nonce = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
        let csp = HeaderValue::from_str(&content_security_policy(&nonce, page.runs_script()))?;
        let body = self.render_html(page, &nonce)?;
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        security_headers(headers);
        Ok(response)
    }

    fn render_html(&self, page: &Page, nonce: &str) -> Result<String, minijinja::Error> {
        let inner = &self.inner;
        let common = context! {
            product_name => inner.product_name,
            logo_url => inner.logo_url,
            accent_color => inner.accent_color,
            nonce => nonce,
        };
        let css = inner.env.get_template(STYLE)?.render(common.clone())?;
        // Later wins: a view field cannot shadow the common values.
        let ctx = merge_maps([
            page.view(),
            common,
            context! { stylesheet => Value::from_safe_string(css) },
        ]);
        inner.env.get_template(page.template())?.render(ctx)
    }
}

fn content_security_policy(nonce: &str, script: bool) -> String {
    // No `form-action`: Chrome applies it to the redirect that follows a form POST, which
    // would block the redirect back to the client application.
    let script = if script {
        format!(" script-src 'nonce-{nonce}';")
    } else {
        String::new()
    };
    format!(
        "default-src 'none'; style-src 'nonce-{nonce}';{script} img-src 'self' https: data:; \
         base-uri 'none'; frame-ancestors 'none'"
    )
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// HTML-escape strings as `& < > " '` only; minijinja's default also escapes `/`, which is
/// valid but makes URLs in `action`/`src` attributes needlessly hard for scripts to read.
fn html_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), minijinja::Error> {
    if state.auto_escape() == AutoEscape::Html
        && !value.is_safe()
        && let Some(text) = value.as_str()
    {
        return write_html_escaped(out, text).map_err(minijinja::Error::from);
    }
    escape_formatter(out, state, value)
}

fn write_html_escaped(out: &mut Output, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)
}

fn is_hex_colour(colour: &str) -> bool {
    colour
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_dir(dir: &Path) -> Result<(), PageLoadError> {
    let meta = std::fs::metadata(dir).map_err(|source| PageLoadError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(PageLoadError::Dir {
            path: dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        })
    }
}

/// The override's source and its path for messages, or `None` when there is no such file.
fn read_override(path: &Path) -> Result<Option<(String, String)>, PageLoadError> {
    match std::fs::read_to_string(path) {
        Ok(source) => Ok(Some((source, path.display().to_string()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PageLoadError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Every page, with every optional part both present and absent, to prove the templates at
/// startup.
fn sample_pages() -> Vec<Page> {
    let text = |s: &str| s.to_owned();
    vec![
        Page::Login(LoginView {
            client_name: text("Sample app"),
            request: text("request"),
            csrf: text("csrf"),
            username: String::new(),
            error: None,
        }),
        Page::Login(LoginView {
            client_name: text("Sample app"),
            request: text("request"),
            csrf: text("csrf"),
            username: text("alice"),
            error: Some(text("Wrong username or password")),
        }),
        Page::Consent(ConsentView {
            client_name: text("Sample app"),
            unverified_host: None,
            request: text("request"),
            csrf: text("csrf"),
            username: text("alice"),
            scopes: vec![
                ScopeView {
                    name: text("openid"),
                    api_name: None,
                    description: Some(text("Know who you are")),
                },
                ScopeView {
                    name: text("read:contacts"),
                    api_name: Some(text("Contacts")),
                    description: None,
                },
            ],
        }),
        Page::Consent(ConsentView {
            client_name: text("Sample app"),
            unverified_host: None,
            request: text("request"),
            csrf: text("csrf"),
            username: text("alice"),
            scopes: Vec::new(),
        }),
        Page::Logout(LogoutView {
            csrf: text("csrf"),
            username: Some(text("alice")),
            client_name: None,
            request: String::new(),
        }),
        Page::Logout(LogoutView {
            csrf: text("csrf"),
            username: None,
            client_name: None,
            request: String::new(),
        }),
        Page::SignedOut,
        Page::Error(ErrorView {
            title: text("Something went wrong"),
            message: text("Please try again."),
            developer_detail: vec![text("detail")],
        }),
        Page::Error(ErrorView {
            title: text("Something went wrong"),
            message: text("Please try again."),
            developer_detail: Vec::new(),
        }),
        Page::FormPost(FormPostView {
            redirect_uri: text("https://app.example/callback"),
            fields: vec![(text("code"), text("code")), (text("state"), text("state"))],
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const TRICKY: &str = "a\"b<c>&d'e/f";

    /// The `[ui]` section of the default configuration.
    fn ui() -> UiSettings {
        Config::default().validate().unwrap().ui
    }

    fn pages() -> Pages {
        Pages::load(&ui()).unwrap()
    }

    fn login(username: &str, error: Option<&str>) -> Page {
        Page::Login(LoginView {
            client_name: "Acme CRM".into(),
            request: format!("req-{TRICKY}"),
            csrf: format!("csrf-{TRICKY}"),
            username: username.into(),
            error: error.map(str::to_owned),
        })
    }

    fn consent() -> Page {
        Page::Consent(ConsentView {
            client_name: "Acme CRM".into(),
            unverified_host: None,
            request: "req-1".into(),
            csrf: "csrf-1".into(),
            username: "alice".into(),
            scopes: vec![
                ScopeView {
                    name: "openid".into(),
                    api_name: None,
                    description: Some("Know who you are".into()),
                },
                ScopeView {
                    name: "read:contacts".into(),
                    api_name: Some("Contacts".into()),
                    description: None,
                },
            ],
        })
    }

    fn all_pages() -> Vec<Page> {
        vec![
            login("", None),
            consent(),
            Page::Logout(LogoutView {
                csrf: "csrf-1".into(),
                username: Some("alice".into()),
                client_name: None,
                request: String::new(),
            }),
            Page::SignedOut,
            Page::Error(ErrorView {
                title: "Oops".into(),
                message: "Nope".into(),
                developer_detail: vec!["line".into()],
            }),
            Page::FormPost(FormPostView {
                redirect_uri: "https://app.example/cb".into(),
                fields: vec![("code".into(), "abc".into())],
            }),
        ]
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn render(pages: &Pages, page: Page) -> (StatusCode, HeaderMap, String) {
        let response = pages.render(StatusCode::OK, page);
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, body_of(response).await)
    }

    fn unescape(text: &str) -> String {
        text.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// Every start tag `<tag ...>` in `body`.
    fn tags<'a>(body: &'a str, tag: &str) -> Vec<&'a str> {
        let open = format!("<{tag}");
        body.match_indices(&open)
            .filter(|(at, _)| body[at + open.len()..].starts_with([' ', '>', '\n']))
            .filter_map(|(at, _)| body[at..].find('>').map(|end| &body[at..=at + end]))
            .collect()
    }

    fn attr(tag: &str, name: &str) -> Option<String> {
        let key = format!(" {name}=\"");
        let start = tag.find(&key)? + key.len();
        let end = tag[start..].find('"')?;
        Some(unescape(&tag[start..start + end]))
    }

    fn has_attr(tag: &str, name: &str) -> bool {
        let tag = tag.trim_end_matches('>');
        tag.split_whitespace()
            .any(|part| part == name || part.starts_with(&format!("{name}=")))
    }

    fn input<'a>(body: &'a str, name: &str) -> &'a str {
        let found: Vec<_> = tags(body, "input")
            .into_iter()
            .filter(|tag| attr(tag, "name").as_deref() == Some(name))
            .collect();
        assert_eq!(found.len(), 1, "one input named {name} in {body}");
        found[0]
    }

    fn style_nonce(body: &str) -> String {
        let styles = tags(body, "style");
        assert_eq!(styles.len(), 1, "{body}");
        attr(styles[0], "nonce").unwrap()
    }

    fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
        headers.get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn template_names_match_built_ins() {
        let names: Vec<_> = BUILT_IN.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, TEMPLATE_NAMES);
    }

    #[tokio::test]
    async fn login_page_contract() {
        let (status, _, body) = render(&pages(), login("", None)).await;
        assert_eq!(status, StatusCode::OK);
        let forms = tags(&body, "form");
        assert_eq!(forms.len(), 1);
        assert_eq!(attr(forms[0], "method").as_deref(), Some("post"));
        assert_eq!(attr(forms[0], "action").as_deref(), Some("/login"));

        let username = input(&body, "username");
        assert_eq!(attr(username, "value").as_deref(), Some(""));
        assert_eq!(attr(username, "autocomplete").as_deref(), Some("username"));
        assert!(has_attr(username, "required"));
        assert!(has_attr(username, "autofocus"), "empty username gets focus");
        let password = input(&body, "password");
        assert_eq!(attr(password, "type").as_deref(), Some("password"));
        assert_eq!(
            attr(password, "autocomplete").as_deref(),
            Some("current-password")
        );
        assert!(!has_attr(password, "value"));
        assert!(!has_attr(password, "autofocus"));

        let request = input(&body, "request");
        assert_eq!(attr(request, "type").as_deref(), Some("hidden"));
        assert_eq!(attr(request, "value").unwrap(), format!("req-{TRICKY}"));
        let csrf = input(&body, "csrf");
        assert_eq!(attr(csrf, "type").as_deref(), Some("hidden"));
        assert_eq!(attr(csrf, "value").unwrap(), format!("csrf-{TRICKY}"));

        let labels: Vec<_> = tags(&body, "label")
            .into_iter()
            .filter_map(|tag| attr(tag, "for"))
            .collect();
        assert_eq!(labels, ["username", "password"]);
        assert_eq!(attr(username, "id").as_deref(), Some("username"));
        assert_eq!(attr(password, "id").as_deref(), Some("password"));

        let buttons = tags(&body, "button");
        assert_eq!(buttons.len(), 1);
        assert_eq!(attr(buttons[0], "type").as_deref(), Some("submit"));
        assert!(body.contains("Sign in to continue to Acme CRM"));
        assert!(!body.contains("role=\"alert\""));
        assert!(body.contains("<title>Sign in · Valet</title>"));
    }

    #[tokio::test]
    async fn login_error_is_an_alert_above_the_form_and_focus_moves_to_password() {
        let page = login("alice", Some("Wrong username or password"));
        let (_, _, body) = render(&pages(), page).await;
        let alert = body.find("role=\"alert\"").unwrap();
        assert!(alert < body.find("<form").unwrap());
        assert!(body.contains("Wrong username or password"));
        let username = input(&body, "username");
        assert_eq!(attr(username, "value").as_deref(), Some("alice"));
        assert!(!has_attr(username, "autofocus"));
        let password = input(&body, "password");
        assert!(has_attr(password, "autofocus"));
        assert!(!has_attr(password, "value"), "password is never pre-filled");
    }

    #[tokio::test]
    async fn consent_page_contract() {
        let (_, _, body) = render(&pages(), consent()).await;
        let forms = tags(&body, "form");
        assert_eq!(forms.len(), 1);
        assert_eq!(attr(forms[0], "method").as_deref(), Some("post"));
        assert_eq!(attr(forms[0], "action").as_deref(), Some("/consent"));
        assert_eq!(
            attr(input(&body, "request"), "value").as_deref(),
            Some("req-1")
        );
        assert_eq!(
            attr(input(&body, "csrf"), "value").as_deref(),
            Some("csrf-1")
        );
        assert!(
            body.contains(
                r#"<button class="button primary" type="submit" name="decision" value="allow">Allow</button>"#
            )
        );
        assert!(
            body.contains(
                r#"<button class="button secondary" type="submit" name="decision" value="deny">Deny</button>"#
            )
        );
        let buttons = tags(&body, "button");
        assert_eq!(buttons.len(), 2);
        assert!(
            buttons
                .iter()
                .all(|b| attr(b, "name").as_deref() == Some("decision"))
        );
        assert!(body.contains(">openid</code>"));
        assert!(body.contains(">read:contacts</code>"));
        assert!(body.contains("Contacts"));
        assert!(body.contains("Know who you are"));
        assert!(body.contains("Acme CRM wants to access your account"));
        assert!(body.contains("Signed in as alice"));
    }

    #[tokio::test]
    async fn logout_and_signed_out_pages() {
        let pages = pages();
        for username in [Some("alice"), None] {
            let page = Page::Logout(LogoutView {
                csrf: "csrf-9".into(),
                username: username.map(str::to_owned),
                client_name: None,
                request: String::new(),
            });
            let (_, _, body) = render(&pages, page).await;
            let forms = tags(&body, "form");
            assert_eq!(forms.len(), 1);
            assert_eq!(attr(forms[0], "method").as_deref(), Some("post"));
            assert_eq!(attr(forms[0], "action").as_deref(), Some("/logout"));
            assert_eq!(
                attr(input(&body, "csrf"), "value").as_deref(),
                Some("csrf-9")
            );
            assert!(body.contains(">Sign out</button>"));
            match username {
                Some(name) => assert!(body.contains(&format!("Signed in as {name}"))),
                None => assert!(body.contains("You are not signed in")),
            }
        }
        let (_, _, body) = render(&pages, Page::SignedOut).await;
        assert!(body.contains("You have been signed out"));
        assert!(tags(&body, "form").is_empty());
    }

    #[tokio::test]
    async fn error_page_shows_developer_detail_only_when_present() {
        let pages = pages();
        let page = Page::Error(ErrorView {
            title: "Unknown redirect URI".into(),
            message: "The app sent you to a wrong address.".into(),
            developer_detail: vec![
                "redirect_uri sent: https://evil.example/cb".into(),
                "registered: https://app.example/cb".into(),
            ],
        });
        let response = pages.render(StatusCode::BAD_REQUEST, page);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_of(response).await;
        assert!(body.contains("<h1>Unknown redirect URI</h1>"));
        assert!(body.contains("The app sent you to a wrong address."));
        assert!(body.contains("<summary>Details for the app developer</summary>"));
        assert!(body.contains("<li>redirect_uri sent: https://evil.example/cb</li>"));
        assert!(body.contains("<li>registered: https://app.example/cb</li>"));

        let page = Page::Error(ErrorView {
            title: "Oops".into(),
            message: "Nope".into(),
            developer_detail: Vec::new(),
        });
        let (_, _, body) = render(&pages, page).await;
        assert!(!body.contains("<details"));
    }

    #[tokio::test]
    async fn form_post_page_submits_itself_under_the_nonce() {
        let page = Page::FormPost(FormPostView {
            redirect_uri: "https://app.example/cb?x=1&y=2".into(),
            fields: vec![
                ("code".into(), "abc".into()),
                ("state".into(), TRICKY.into()),
                ("iss".into(), "https://id.example".into()),
            ],
        });
        let (_, headers, body) = render(&pages(), page).await;
        let forms = tags(&body, "form");
        assert_eq!(forms.len(), 1);
        assert_eq!(attr(forms[0], "method").as_deref(), Some("post"));
        assert_eq!(
            attr(forms[0], "action").as_deref(),
            Some("https://app.example/cb?x=1&y=2")
        );
        assert!(body.contains(r#"action="https://app.example/cb?x=1&amp;y=2""#));
        for (name, value) in [
            ("code", "abc"),
            ("state", TRICKY),
            ("iss", "https://id.example"),
        ] {
            let field = input(&body, name);
            assert_eq!(attr(field, "type").as_deref(), Some("hidden"));
            assert_eq!(attr(field, "value").as_deref(), Some(value));
        }
        assert!(body.contains(">Continue</button>"));
        assert!(body.contains("<noscript>"));

        let nonce = style_nonce(&body);
        let scripts = tags(&body, "script");
        assert_eq!(scripts.len(), 1);
        assert_eq!(attr(scripts[0], "nonce").as_deref(), Some(nonce.as_str()));
        assert!(body.contains(&format!(
            "<script nonce=\"{nonce}\">document.forms[0].submit()</script>"
        )));
        let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
        assert!(
            csp.contains(&format!("script-src 'nonce-{nonce}'")),
            "{csp}"
        );
    }

    #[tokio::test]
    async fn user_text_is_escaped() {
        let evil = "<script>alert(1)</script>";
        let pages = pages();
        let page = Page::Login(LoginView {
            client_name: evil.into(),
            request: "r".into(),
            csrf: "c".into(),
            username: "\"><img src=x>".into(),
            error: Some(evil.into()),
        });
        let (_, _, body) = render(&pages, page).await;
        assert!(!body.contains(evil));
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!body.contains("<img src=x>"));
        assert!(body.contains("value=\"&quot;&gt;&lt;img src=x&gt;\""));
        assert!(tags(&body, "script").is_empty());

        let page = Page::Consent(ConsentView {
            client_name: evil.into(),
            unverified_host: None,
            request: "r".into(),
            csrf: "c".into(),
            username: evil.into(),
            scopes: vec![ScopeView {
                name: evil.into(),
                api_name: Some(evil.into()),
                description: Some(evil.into()),
            }],
        });
        let (_, _, body) = render(&pages, page).await;
        assert!(!body.contains(evil));
        assert!(tags(&body, "script").is_empty());

        let page = Page::Error(ErrorView {
            title: evil.into(),
            message: evil.into(),
            developer_detail: vec![evil.into()],
        });
        let (_, _, body) = render(&pages, page).await;
        assert!(!body.contains(evil));

        let page = Page::FormPost(FormPostView {
            redirect_uri: "https://app.example/\"><script>x()</script>".into(),
            fields: vec![(evil.into(), evil.into())],
        });
        let (_, _, body) = render(&pages, page).await;
        assert!(!body.contains(evil));
        assert_eq!(tags(&body, "script").len(), 1);
    }

    #[tokio::test]
    async fn every_page_sets_the_security_headers() {
        let pages = pages();
        let mut nonces = Vec::new();
        for page in all_pages() {
            let script = page.runs_script();
            let (_, headers, body) = render(&pages, page).await;
            assert_eq!(
                header(&headers, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header(&headers, header::X_FRAME_OPTIONS), "DENY");
            assert_eq!(header(&headers, header::REFERRER_POLICY), "no-referrer");
            assert_eq!(header(&headers, header::CACHE_CONTROL), "no-store");
            assert_eq!(header(&headers, header::PRAGMA), "no-cache");
            assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");

            let nonce = style_nonce(&body);
            assert!(nonce.len() >= 22, "{nonce}");
            let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
            let mut expected = format!("default-src 'none'; style-src 'nonce-{nonce}';");
            if script {
                expected.push_str(&format!(" script-src 'nonce-{nonce}';"));
            }
            expected
                .push_str(" img-src 'self' https: data:; base-uri 'none'; frame-ancestors 'none'");
            assert_eq!(csp, expected);
            assert!(!csp.contains("form-action"));
            if !script {
                assert!(tags(&body, "script").is_empty(), "no JavaScript: {body}");
            }
            // No external resources but the (unconfigured) logo.
            assert!(tags(&body, "link").is_empty());
            assert!(tags(&body, "img").is_empty());
            assert!(body.starts_with("<!doctype html>\n<html lang=\"en\">"));
            assert!(body.contains("<meta name=\"viewport\""));
            assert!(body.contains("<main"));
            nonces.push(nonce);
        }
        nonces.sort();
        nonces.dedup();
        assert_eq!(
            nonces.len(),
            all_pages().len(),
            "a fresh nonce per response"
        );
    }

    #[tokio::test]
    async fn stylesheet_is_inlined_unescaped_with_the_ui_config() {
        let ui = UiSettings {
            product_name: "Acme <ID>".into(),
            logo_url: Some("https://cdn.example/logo.svg?v=1&x=2".into()),
            accent_color: "#0f766e".into(),
            templates_dir: None,
        };
        let pages = Pages::load(&ui).unwrap();
        let (_, _, body) = render(&pages, login("", None)).await;
        assert!(body.contains("<title>Sign in · Acme &lt;ID&gt;</title>"));
        assert!(body.contains("Acme &lt;ID&gt;</span>"));
        let images = tags(&body, "img");
        assert_eq!(images.len(), 1);
        assert_eq!(
            attr(images[0], "src").as_deref(),
            Some("https://cdn.example/logo.svg?v=1&x=2")
        );
        let start = body.find("<style").unwrap();
        let css = &body[start..body.find("</style>").unwrap()];
        assert!(css.contains("--accent: #0f766e;"));
        assert!(css.contains(r#""Segoe UI""#), "CSS quotes are not escaped");
        assert!(css.contains(r#"input[type="password"]"#));
        assert!(!css.contains('&'), "{css}");
    }

    #[test]
    fn a_bad_accent_colour_is_refused() {
        for colour in ["red", "#12", "#1234", "#gggggg", "#fff;}</style>"] {
            let ui = UiSettings {
                accent_color: colour.into(),
                ..ui()
            };
            let err = Pages::load(&ui).unwrap_err();
            assert!(matches!(err, PageLoadError::AccentColor(_)), "{colour}");
        }
        for colour in ["#fff", "#A1b2C3"] {
            let ui = UiSettings {
                accent_color: colour.into(),
                ..ui()
            };
            assert!(Pages::load(&ui).is_ok(), "{colour}");
        }
    }

    fn with_dir(dir: &Path) -> UiSettings {
        UiSettings {
            templates_dir: Some(dir.to_path_buf()),
            ..ui()
        }
    }

    #[tokio::test]
    async fn an_override_replaces_only_its_own_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("login.html"),
            "{% extends \"base.html\" %}{% block title %}Welcome{% endblock %}\
             {% block content %}<p>Custom login for {{ client_name }}</p>{% endblock %}",
        )
        .unwrap();
        let pages = Pages::load(&with_dir(dir.path())).unwrap();
        let (_, headers, body) = render(&pages, login("", None)).await;
        assert!(body.contains("<p>Custom login for Acme CRM</p>"));
        assert!(body.contains("<title>Welcome · Valet</title>"));
        assert!(!body.contains("Sign in to continue"));
        let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains(&format!("'nonce-{}'", style_nonce(&body))));

        let (_, _, body) = render(&pages, consent()).await;
        assert!(body.contains("Acme CRM wants to access your account"));
    }

    #[test]
    fn an_override_with_a_syntax_error_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consent.html");
        std::fs::write(&path, "{% if %}oops").unwrap();
        let err = Pages::load(&with_dir(dir.path())).unwrap_err();
        assert!(
            matches!(&err, PageLoadError::Template { name, .. } if name == "consent.html"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn an_override_that_fails_to_render_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.html");
        std::fs::write(&path, "<p>{{ product_name | no_such_filter }}</p>").unwrap();
        let err = Pages::load(&with_dir(dir.path())).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("no_such_filter"), "{message}");

        std::fs::remove_file(&path).unwrap();
        let path = dir.path().join("error.html");
        std::fs::write(&path, "{% include \"missing.html\" %}").unwrap();
        let message = Pages::load(&with_dir(dir.path())).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn a_missing_templates_dir_fails() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Pages::load(&with_dir(&missing)).unwrap_err();
        assert!(matches!(err, PageLoadError::Dir { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"));
    }
}
