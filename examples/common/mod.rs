//! What the load generators (`soak`, `loadgen`) share: client authentication, PKCE, reading
//! a form off a page, and a browser that signs in through Valet's own pages.

#![allow(dead_code)] // each generator uses its own part of this

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use scraper::{Html, Selector};
use serde_json::Value;

pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// HTTP Basic credentials as RFC 6749 §2.3.1 wants them: each part form-encoded first.
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

pub async fn expect_json(response: reqwest::Response, status: u16) -> Result<Value, String> {
    let got = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if got != status {
        return Err(format!("status {got}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// A client_credentials access token for `audience`, with HTTP Basic client authentication.
pub async fn client_credentials(
    http: &reqwest::Client,
    base: &str,
    client: (&str, &str),
    audience: &str,
) -> Result<String, String> {
    let response = http
        .post(format!("{base}/token"))
        .header("authorization", basic(client.0, client.1))
        .form(&[("grant_type", "client_credentials"), ("audience", audience)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = expect_json(response, 200).await?;
    Ok(body["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let bytes: [u8; 32] = rand::rng().random();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// The parameters of a redirect back to the client.
pub fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// The first POST form of a page: its action and its named inputs.
pub fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let doc = Html::parse_document(html);
    let form = doc
        .select(&Selector::parse("form[method=post]").unwrap())
        .next()?;
    let fields = form
        .select(&Selector::parse("input[name]").unwrap())
        .map(|input| {
            let attr = |n| input.value().attr(n).unwrap_or("").to_owned();
            (attr("name"), attr("value"))
        })
        .collect();
    Some((form.value().attr("action").unwrap_or("").to_owned(), fields))
}

pub fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    match fields.iter_mut().find(|(n, _)| n == name) {
        Some(field) => field.1 = value.to_owned(),
        None => fields.push((name.to_owned(), value.to_owned())),
    }
}

/// A client's side of an authorization request.
pub struct CodeRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
}

/// `GET /authorize` through the pages (sign-in as `user`, consent when asked) with `browser`,
/// a client with a cookie store and no redirect following, until Valet redirects back to the
/// client. Returns the redirect's parameters and the PKCE verifier. A browser that already
/// holds a session goes straight back, as a signed-in user's browser does.
pub async fn authorize(
    base: &str,
    browser: &reqwest::Client,
    request: &CodeRequest<'_>,
    user: (&str, &str),
) -> Result<(HashMap<String, String>, String), String> {
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", request.client_id)
        .append_pair("redirect_uri", request.redirect_uri)
        .append_pair("scope", request.scope)
        .append_pair("audience", request.audience)
        .append_pair("state", "bench")
        .append_pair("nonce", "bench")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let absolute = |target: String| {
        if target.starts_with('/') {
            format!("{base}{target}")
        } else {
            target
        }
    };
    let mut response = browser.get(url).send().await.map_err(|e| e.to_string())?;
    for _ in 0..8 {
        let status = response.status().as_u16();
        if status == 303 || status == 302 {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            if location.starts_with(request.redirect_uri) {
                return Ok((query_of(&location), verifier));
            }
            response = browser
                .get(absolute(location))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        if status != 200 {
            return Err(format!("page status {status}"));
        }
        let html = response.text().await.map_err(|e| e.to_string())?;
        let (action, mut fields) = form(&html).ok_or("a page without a form")?;
        if fields.iter().any(|(n, _)| n == "username") {
            set(&mut fields, "username", user.0);
            set(&mut fields, "password", user.1);
        } else {
            set(&mut fields, "decision", "allow");
        }
        response = browser
            .post(absolute(action))
            .form(&fields)
            .send()
            .await
            .map_err(|e| e.to_string())?;
    }
    Err("never got back to the client".into())
}

/// A browser: cookies kept, redirects not followed (the generator reads each one).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}
