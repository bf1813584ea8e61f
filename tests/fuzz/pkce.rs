//! Target `pkce`: PKCE checks (RFC 7636 §4.1–§4.6): `pkce::verify`, `pkce::check_challenge`
//! and `pkce::Method::parse`.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use valet::oauth::pkce::{Method, check_challenge, verify};

use crate::{Fuzz, corpus_text, edits, mutate_text, nasty_string, replay};

fn verifier() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{43,128}"
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

fn is_pkce_string(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whatever the inputs: no panic, and an answer the RFC allows.
fn check_any(verifier: &str, challenge: &str) -> TestCaseResult {
    for method in [Method::S256, Method::Plain] {
        let ok = verify(verifier, challenge, method);
        let expected = is_pkce_string(verifier)
            && match method {
                Method::S256 => s256(verifier) == challenge,
                Method::Plain => verifier == challenge,
            };
        prop_assert_eq!(ok, expected, "{:?} {:?} {:?}", verifier, challenge, method);
        let well_formed = check_challenge(challenge, method).is_ok();
        prop_assert_eq!(
            well_formed,
            is_pkce_string(challenge) && (method == Method::Plain || challenge.len() == 43)
        );
    }
    let parsed = Method::parse(Some(challenge)).ok();
    let expected = match challenge {
        "S256" => Some(Method::S256),
        "plain" => Some(Method::Plain),
        _ => None,
    };
    prop_assert_eq!(parsed, expected);
    Ok(())
}

#[test]
fn fuzz() {
    Fuzz::new("pkce")
        .prop("s256_accepts_its_challenge", verifier(), |v| {
            let challenge = s256(&v);
            prop_assert!(check_challenge(&challenge, Method::S256).is_ok());
            prop_assert!(verify(&v, &challenge, Method::S256));
            prop_assert!(!verify(&v, &challenge, Method::Plain));
            prop_assert!(verify(&v, &v, Method::Plain));
            check_any(&v, &challenge)
        })
        .prop(
            "s256_refuses_any_other_challenge",
            (verifier(), any::<usize>(), "[A-Za-z0-9_-]"),
            |(v, at, replacement)| {
                // One character of the right challenge changed.
                let mut challenge = s256(&v);
                let i = at % challenge.len();
                challenge.replace_range(i..i + 1, &replacement);
                let same = challenge == s256(&v);
                prop_assert_eq!(verify(&v, &challenge, Method::S256), same);
                check_any(&v, &challenge)
            },
        )
        .prop(
            "s256_refuses_another_verifier",
            (verifier(), verifier()),
            |(v, other)| {
                prop_assert_eq!(verify(&other, &s256(&v), Method::S256), other == v);
                check_any(&other, &s256(&v))
            },
        )
        .prop(
            "arbitrary_inputs",
            (
                prop_oneof![verifier(), nasty_string(140)],
                prop_oneof![nasty_string(140), verifier().prop_map(|v| s256(&v))],
            ),
            |(v, c)| check_any(&v, &c),
        )
        .prop("mutated_verifiers", (verifier(), edits()), |(v, edits)| {
            let challenge = s256(&v);
            let mutated = mutate_text(&v, &edits);
            prop_assert_eq!(verify(&mutated, &challenge, Method::S256), mutated == v);
            check_any(&mutated, &challenge)
        })
        .run();
}

#[test]
fn corpus_replays() {
    // Each seed is `verifier challenge` on one line (either may be empty).
    replay(corpus_text("pkce"), |line| {
        let (v, c) = line.split_once(' ').unwrap_or((&line, ""));
        check_any(v, c)
    });
}
