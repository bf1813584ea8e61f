//! Target `scope`: the scope parser, `ScopeSet::parse` (RFC 6749 §3.3:
//! `scope = scope-token *( SP scope-token )`, `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`).

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use valet::domain::{ScopeSet, ScopeSyntaxError};

use crate::{Fuzz, corpus_text, edits, mutate_text, nasty_string, replay};

/// A scope token as the grammar writes it.
fn token() -> impl Strategy<Value = String> {
    "[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,12}"
}

/// A character the grammar allows in no token, and not the separator.
fn bad_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec!['"', '\\', '\t', '\n', '\r', '\0', '\u{7f}', '\u{a0}']),
        any::<char>().prop_filter("outside the token set", |c| {
            !matches!(*c, '\u{21}' | '\u{23}'..='\u{5b}' | '\u{5d}'..='\u{7e}' | ' ')
        }),
    ]
}

/// What must hold of whatever `parse` answers.
fn check_any(text: &str) -> TestCaseResult {
    match ScopeSet::parse(text) {
        Ok(set) => {
            let rendered = set.to_string();
            // Rendering is canonical (sorted, one space apart) and parses back to the set.
            let tokens: BTreeSet<&str> = text.split(' ').filter(|t| !t.is_empty()).collect();
            prop_assert_eq!(&rendered, &tokens.into_iter().collect::<Vec<_>>().join(" "));
            prop_assert_eq!(ScopeSet::parse(&rendered), Ok(set.clone()));
            prop_assert!(
                rendered
                    .bytes()
                    .all(|b| b == b' ' || (0x21..=0x7e).contains(&b))
            );
            // The stored form (serde) is the same text.
            let json = serde_json::to_string(&set).unwrap();
            prop_assert_eq!(serde_json::from_str::<ScopeSet>(&json).ok(), Some(set));
        }
        Err(e) => {
            if let ScopeSyntaxError::Character(shown) = &e {
                // The echoed token is bounded and printable.
                prop_assert!(shown.chars().count() <= 64);
                prop_assert!(shown.chars().all(|c| (' '..='~').contains(&c)));
            }
            prop_assert!(
                serde_json::from_str::<ScopeSet>(&serde_json::to_string(text).unwrap()).is_err()
            );
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Break {
    Char(usize, char),
    Separator(usize, &'static str),
    Leading,
    Trailing,
}

fn breaks() -> impl Strategy<Value = Break> {
    prop_oneof![
        (any::<usize>(), bad_char()).prop_map(|(at, c)| Break::Char(at, c)),
        (
            any::<usize>(),
            prop::sample::select(vec!["  ", "\t", "\u{a0}", "\u{3000}", "\n", " \t"])
        )
            .prop_map(|(at, s)| Break::Separator(at, s)),
        Just(Break::Leading),
        Just(Break::Trailing),
    ]
}

#[test]
fn fuzz() {
    Fuzz::new("scope")
        .prop("arbitrary_text", nasty_string(80), |text| check_any(&text))
        .prop(
            "valid_scopes_round_trip",
            prop::collection::vec(token(), 0..8),
            |tokens| {
                let text = tokens.join(" ");
                let set = ScopeSet::parse(&text);
                prop_assert!(set.is_ok(), "{:?}: {:?}", text, set);
                let set = set.unwrap();
                let expected: BTreeSet<&str> = tokens.iter().map(String::as_str).collect();
                prop_assert_eq!(set.iter().collect::<BTreeSet<_>>(), expected);
                for token in &tokens {
                    prop_assert!(set.contains(token));
                }
                check_any(&text)
            },
        )
        .prop(
            "broken_scopes_are_refused",
            (prop::collection::vec(token(), 1..6), breaks()),
            |(tokens, fault)| {
                let mut text = tokens.join(" ");
                let expected = match &fault {
                    Break::Char(at, c) => {
                        let i = at % (text.len() + 1);
                        text.insert(i, *c);
                        "character"
                    }
                    Break::Separator(at, sep) => {
                        // Replace one of the single spaces (or append one more token).
                        let spaces: Vec<usize> = text.match_indices(' ').map(|(i, _)| i).collect();
                        if spaces.is_empty() {
                            text = format!("{text}{sep}x");
                        } else {
                            let i = spaces[at % spaces.len()];
                            text.replace_range(i..i + 1, sep);
                        }
                        if sep.starts_with(' ') && sep.len() > 1 && !sep.contains('\t') {
                            "spacing"
                        } else {
                            "either"
                        }
                    }
                    Break::Leading => {
                        text.insert(0, ' ');
                        "spacing"
                    }
                    Break::Trailing => {
                        text.push(' ');
                        "spacing"
                    }
                };
                let result = ScopeSet::parse(&text);
                match expected {
                    "spacing" => {
                        prop_assert_eq!(result, Err(ScopeSyntaxError::Spacing), "{:?}", text)
                    }
                    "character" => prop_assert!(
                        matches!(result, Err(ScopeSyntaxError::Character(_))),
                        "{:?}: {:?}",
                        text,
                        result
                    ),
                    _ => prop_assert!(result.is_err(), "{:?}: {:?}", text, result),
                }
                check_any(&text)
            },
        )
        .prop(
            "mutated_scopes",
            (prop::collection::vec(token(), 0..6), edits()),
            |(tokens, edits)| check_any(&mutate_text(&tokens.join(" "), &edits)),
        )
        .run();
}

#[test]
fn corpus_replays() {
    replay(corpus_text("scope"), |text| check_any(&text));
}
