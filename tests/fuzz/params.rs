//! Target `params`: the form-body and query-string parser, `Params::parse` and
//! `Params::parse_allowing_nul` (RFC 6749 §3.1, Appendix B).

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use valet::oauth::{ErrorCode, Params};

use crate::{Fuzz, check_error, corpus, edits, form_encode, mutate, nasty_string, replay};

/// Real request bodies and query strings, as the mutated inputs' starting points.
const REAL: [&str; 5] = [
    "grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri=https%3A%2F%2Fclient%2Eexample%2Ecom%2Fcb&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "response_type=code&client_id=s6BhdRkqt3&state=xyz&redirect_uri=https%3A%2F%2Fclient%2Eexample%2Ecom%2Fcb&scope=openid+profile&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
    "grant_type=client_credentials&scope=read%3Acontacts+write%3Acontacts&audience=https%3A%2F%2Fapi.example.com",
    "token=eyJhbGciOiJSUzI1NiJ9.e30.c2ln&token_type_hint=access_token",
    "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&client_id=a&client_secret=b",
];

/// The answer the rules give for `body`, worked out from its decoded pairs: refused if a name
/// repeats or a NUL is where none may be; otherwise every non-empty value under its name.
fn check(body: &[u8], nul_ok: &[&str]) -> TestCaseResult {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut names = HashSet::new();
    let refused = pairs.iter().any(|(name, value)| {
        !names.insert(name.clone())
            || name.contains('\0')
            || (value.contains('\0') && !nul_ok.contains(&name.as_str()))
    });
    match Params::parse_allowing_nul(body, nul_ok) {
        Err(e) => {
            prop_assert!(refused, "refused without a duplicate or a NUL: {e:?}");
            prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
            check_error(&e)?;
        }
        Ok(params) => {
            prop_assert!(!refused, "accepted a duplicate or a NUL");
            for (name, value) in &pairs {
                let expected = (!value.is_empty()).then_some(value.as_str());
                prop_assert_eq!(params.get(name), expected, "parameter {:?}", name);
            }
            for max in [0, 1, 8, 64] {
                let expected = pairs
                    .iter()
                    .filter(|(_, value)| value.len() > max)
                    .map(|(name, _)| name.as_str())
                    .min();
                prop_assert_eq!(params.longer_than(max), expected);
            }
        }
    }
    Ok(())
}

fn check_both(body: &[u8]) -> TestCaseResult {
    check(body, &[])?;
    check(body, &["token"])?;
    // `parse` is `parse_allowing_nul` with no exceptions.
    prop_assert_eq!(Params::parse(body), Params::parse_allowing_nul(body, &[]));
    Ok(())
}

/// Distinct names with arbitrary values, encoded in one of the equivalent spellings.
fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(nasty_string(12), nasty_string(40), 0..6)
        .prop_map(|map| map.into_iter().collect())
}

#[test]
fn fuzz() {
    Fuzz::new("params")
        .prop(
            "arbitrary_bytes",
            prop::collection::vec(any::<u8>(), 0..400),
            |body| check_both(&body),
        )
        .prop(
            "mutated_requests",
            (prop::sample::select(REAL.to_vec()), edits()),
            |(body, edits)| check_both(&mutate(body.as_bytes(), &edits)),
        )
        .prop(
            "encoded_pairs_decode",
            (pairs(), any::<u64>(), any::<u64>(), any::<bool>()),
            |(pairs, name_style, value_style, duplicate)| {
                let mut body: Vec<String> = pairs
                    .iter()
                    .map(|(n, v)| {
                        format!(
                            "{}={}",
                            form_encode(n, name_style),
                            form_encode(v, value_style)
                        )
                    })
                    .collect();
                if duplicate && let Some(first) = body.first().cloned() {
                    body.push(first);
                }
                let body = body.join("&");
                let nul = pairs
                    .iter()
                    .any(|(n, v)| n.contains('\0') || v.contains('\0'));
                let repeated = duplicate && !pairs.is_empty();
                match Params::parse(body.as_bytes()) {
                    Ok(params) => {
                        prop_assert!(!nul && !repeated, "{body}");
                        for (name, value) in &pairs {
                            let expected = (!value.is_empty()).then_some(value.as_str());
                            prop_assert_eq!(params.get(name), expected, "{}", body);
                        }
                    }
                    Err(e) => {
                        prop_assert!(nul || repeated, "{body}: {e:?}");
                        check_error(&e)?;
                    }
                }
                check_both(body.as_bytes())
            },
        )
        .run();
}

#[test]
fn corpus_replays() {
    replay(corpus("params"), |body| check_both(&body));
}
