//! A scripted browser for the authorization flow: a cookie-keeping HTTP client that reads the
//! real login and consent pages, fills in their forms and follows the redirects by hand.

use std::collections::HashMap;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scraper::{Html, Selector};

use super::fixtures::{ClientAuth, PASSWORD};
use super::{CONTACTS, TestApp};

/// RFC 7636 §4.1–§4.2 with S256.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::from_verifier(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn from_verifier(verifier: String) -> Self {
        let challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// `/authorize` at `base` as a URL: a code request of `client_id` for the Contacts API with
/// PKCE (S256) and `state`, without a redirect URI (the client's only one is meant).
pub fn code_request_url(base: &str, client_id: &str, pkce: &Pkce, state: &str) -> String {
    let mut url = url::Url::parse(&format!("{base}/authorize")).expect("base URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("audience", CONTACTS)
        .append_pair("state", state)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// The one `<form method="post">` of a page, with every named input and its value.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn parse(html: &str) -> Self {
        let doc = Html::parse_document(html);
        let forms: Vec<_> = doc
            .select(&Selector::parse("form[method=post]").unwrap())
            .collect();
        assert_eq!(forms.len(), 1, "exactly one POST form expected in:\n{html}");
        let form = forms[0];
        let fields = form
            .select(&Selector::parse("input[name]").unwrap())
            .map(|input| {
                let attr = |n| input.value().attr(n).unwrap_or("").to_owned();
                (attr("name"), attr("value"))
            })
            .collect();
        Self {
            action: form.value().attr("action").unwrap_or("").to_owned(),
            fields,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.fields.retain(|(n, _)| n != name);
        self
    }
}

/// Buttons of the page's form as (name, value).
pub fn buttons(html: &str) -> Vec<(String, String)> {
    let doc = Html::parse_document(html);
    doc.select(&Selector::parse("form[method=post] button").unwrap())
        .map(|b| {
            let attr = |n| b.value().attr(n).unwrap_or("").to_owned();
            (attr("name"), attr("value"))
        })
        .collect()
}

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The parameters of a redirect to the client: query or fragment.
pub fn redirect_params(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).unwrap_or_else(|e| panic!("{location}: {e}"));
    let encoded = match url.fragment() {
        Some(fragment) => fragment.to_owned(),
        None => url.query().unwrap_or("").to_owned(),
    };
    url::form_urlencoded::parse(encoded.as_bytes())
        .into_owned()
        .collect()
}

/// A client that takes part in redirects: its id, its secret unless it is public, and the
/// redirect URI it uses.
#[derive(Debug, Clone)]
pub struct WebClient {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

impl TestApp {
    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        self.http.get(url).send().await.expect("GET")
    }

    /// `GET /authorize` with these parameters.
    pub async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url("/authorize"))
            .query(params)
            .send()
            .await
            .expect("authorize")
    }

    /// Post a page's form back to the server, as a browser would.
    pub async fn submit(&self, form: &Form) -> reqwest::Response {
        self.http
            .post(self.url(&form.action))
            .form(&form.fields)
            .send()
            .await
            .expect("submit")
    }

    /// Start a code request (S256 PKCE, the Contacts API) for `client` in a browser with no
    /// session, and return the login page's HTML.
    pub async fn login_page(&self, client: &WebClient) -> String {
        let pkce = Pkce::new();
        let response = self
            .authorize(&[
                ("client_id", client.client_id.as_str()),
                ("response_type", "code"),
                ("audience", CONTACTS),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ])
            .await;
        self.follow_to_page(response, "/login").await
    }

    /// Follow a 303 to one of our own pages and return its HTML.
    pub async fn follow_to_page(&self, response: reqwest::Response, path: &str) -> String {
        assert_eq!(response.status(), 303, "expected a redirect to {path}");
        let location = location(&response);
        assert!(
            location.starts_with(path),
            "expected a redirect to {path}, got {location}"
        );
        let page = self.get(&location).await;
        assert_eq!(page.status(), 200, "{location}");
        page.text().await.unwrap()
    }

    /// Sign in on a login page.
    pub async fn sign_in(
        &self,
        login_html: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let mut form = Form::parse(login_html);
        form.set("username", username).set("password", password);
        self.submit(&form).await
    }

    /// Press a consent button.
    pub async fn decide(&self, consent_html: &str, decision: &str) -> reqwest::Response {
        let mut form = Form::parse(consent_html);
        form.set("decision", decision);
        self.submit(&form).await
    }

    /// `/authorize` → login → consent (allow) → the redirect to the client; returns its
    /// parameters.
    pub async fn sign_in_and_allow(
        &self,
        params: &[(&str, &str)],
        username: &str,
    ) -> HashMap<String, String> {
        let response = self.authorize(params).await;
        let login = self.follow_to_page(response, "/login").await;
        let response = self.sign_in(&login, username, PASSWORD).await;
        let consent = self.follow_to_page(response, "/consent").await;
        let response = self.decide(&consent, "allow").await;
        assert_eq!(response.status(), 303);
        redirect_params(&location(&response))
    }

    /// With a live session and the consent remembered, `/authorize` redirects straight back
    /// to the client: the code it carries.
    pub async fn code_without_pages(&self, params: &[(&str, &str)]) -> String {
        let response = self.authorize(params).await;
        assert_eq!(response.status(), 303, "{params:?}");
        redirect_params(&location(&response))["code"].clone()
    }

    /// Redeem a code at `/token` as `client` (Basic when it has a secret).
    pub async fn redeem(
        &self,
        client: &WebClient,
        code: &str,
        verifier: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri.as_str()),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        self.post_as("/token", ClientAuth::from(client), &form)
            .await
    }
}
