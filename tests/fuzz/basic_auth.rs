//! Target `basic_auth`: the HTTP Basic decoder of the token endpoint (RFC 6749 §2.3.1: the id
//! and secret are form-encoded, joined with `:` and base64-encoded). It is private
//! (`client_auth::decode_basic`); `client_auth::presented` calls it first for any
//! `Authorization` header when the body carries no other credentials, so it is fuzzed
//! through that.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use valet::oauth::client_auth::{AuthMethod, presented};
use valet::oauth::{Challenge, ErrorCode, Params};

use crate::{
    Fuzz, check_error, corpus_text, edits, form_encode, mutate_text, nasty_string, replay,
};

/// What `presented` answers for this header and no body.
fn check_header(header: &str) -> TestCaseResult {
    match presented(Some(header), &Params::default()) {
        Ok(p) => {
            prop_assert_eq!(p.method, AuthMethod::Basic);
            prop_assert!(!p.client_id.is_empty());
            prop_assert!(p.secret.is_some() && p.assertion.is_none());
            // Only a `Basic` scheme (any case) followed by a space gets this far.
            let scheme = header.split(' ').next().unwrap_or_default();
            prop_assert!(scheme.eq_ignore_ascii_case("basic"), "{header:?}");
            // The model: base64, UTF-8, split at the first `:`, form-decode both halves.
            let rest = header.split_once(' ').unwrap().1.trim();
            let decoded = String::from_utf8(STANDARD.decode(rest).unwrap()).unwrap();
            let (id, secret) = decoded.split_once(':').unwrap();
            prop_assert_eq!(Some(p.client_id), form_decode(id));
            prop_assert_eq!(p.secret, form_decode(secret));
        }
        Err(e) => {
            prop_assert_eq!(e.code, ErrorCode::InvalidClient);
            check_error(&e)?;
            let scheme = header.split_once(' ').map(|(s, _)| s);
            if scheme.is_some_and(|s| s.eq_ignore_ascii_case("basic")) || scheme.is_none() {
                // Malformed Basic credentials come with the Basic challenge (RFC 6749 §5.2).
                prop_assert_eq!(e.challenge, Some(Challenge::Basic));
            }
        }
    }
    Ok(())
}

fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn basic(scheme: &str, id: &str, secret: &str, style: u64) -> String {
    let joined = format!("{}:{}", form_encode(id, style), form_encode(secret, !style));
    format!("{scheme} {}", STANDARD.encode(joined))
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["Basic", "basic", "BASIC", "bAsIc"])
}

#[test]
fn fuzz() {
    Fuzz::new("basic_auth")
        .prop(
            "encoded_credentials_decode",
            (scheme(), nasty_string(40), nasty_string(60), any::<u64>()),
            |(scheme, id, secret, style)| {
                let header = basic(scheme, &id, &secret, style);
                match presented(Some(&header), &Params::default()) {
                    Ok(p) => {
                        prop_assert!(!id.is_empty());
                        prop_assert_eq!(&p.client_id, &id);
                        prop_assert_eq!(p.secret.as_deref(), Some(secret.as_str()));
                    }
                    Err(e) => {
                        prop_assert!(id.is_empty(), "{:?} {:?}: {:?}", id, secret, e);
                        prop_assert_eq!(e.challenge, Some(Challenge::Basic));
                    }
                }
                check_header(&header)
            },
        )
        .prop(
            "body_and_header_together",
            (
                "[a-z]{1,6}",
                "[a-z]{0,6}",
                prop::option::of("[a-z]{1,6}"),
                any::<bool>(),
            ),
            |(id, secret, body_id, body_secret)| {
                let mut body = Vec::new();
                if let Some(body_id) = &body_id {
                    body.push(format!("client_id={body_id}"));
                }
                if body_secret {
                    body.push("client_secret=s".to_owned());
                }
                let params = Params::parse(body.join("&").as_bytes()).unwrap();
                let result = presented(Some(&basic("Basic", &id, &secret, 0)), &params);
                let conflict = body_secret || body_id.as_ref().is_some_and(|b| *b != id);
                match result {
                    Ok(p) => {
                        prop_assert!(!conflict);
                        prop_assert_eq!(p.client_id, id);
                    }
                    Err(e) => {
                        prop_assert!(conflict, "{:?}", e);
                        prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
                    }
                }
                Ok(())
            },
        )
        .prop("arbitrary_header", nasty_string(80), |header| {
            check_header(&header)
        })
        .prop(
            "base64_noise",
            (
                scheme(),
                prop::collection::vec(any::<u8>(), 0..64),
                prop::sample::select(vec!["", " ", "  ", "\t", "=", "=="]),
            ),
            |(scheme, bytes, tail)| {
                check_header(&format!("{scheme} {}{tail}", STANDARD.encode(bytes)))
            },
        )
        .prop(
            "mutated_headers",
            (scheme(), "[a-zA-Z0-9%+.:_-]{0,20}", "[ -~]{0,20}", edits()),
            |(scheme, id, secret, edits)| {
                check_header(&mutate_text(&basic(scheme, &id, &secret, 7), &edits))
            },
        )
        .run();
}

#[test]
fn corpus_replays() {
    replay(corpus_text("basic_auth"), |header| check_header(&header));
}
