//! Fuzz targets as property tests (issue 14 §4; docs/security.md "Fuzzing").
//!
//! Each module is one target: random and near-valid inputs for one parser or check of
//! untrusted input, which must never panic and, where the rules give an answer, must give it.
//! Every run also replays the committed seed corpus (`tests/fuzz/corpus/<target>/`) and any
//! failure proptest saved (`tests/fuzz/regressions/<target>-<property>.txt`).
//!
//! How long: `VALET_FUZZ_CASES` (or `PROPTEST_CASES`) cases per property, 256 by default so
//! that `cargo test` stays quick; or, with `VALET_FUZZ_SECONDS`, as many cases as fit in that
//! many seconds per target (split over its properties). `scripts/fuzz.sh` runs each target
//! for five minutes.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseResult, TestRunner};
use valet::clock::Clock;
use valet::config::{Config as ValetConfig, RegistrationMode};
use valet::core::Core;

mod assertion;
mod basic_auth;
mod jwks;
mod jwt;
mod params;
mod pkce;
mod redirect;
mod registration;
mod scope;

/// One target's properties, run for a number of cases or for a time.
pub struct Fuzz {
    target: &'static str,
    props: Vec<(&'static str, Batch)>,
}

/// Runs one property for `cases` cases; the error is proptest's report of the minimal input.
type Batch = Box<dyn FnMut(u32) -> Result<(), String>>;

enum Budget {
    Cases(u32),
    Seconds(f64),
}

fn budget() -> Budget {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(seconds) = var("VALET_FUZZ_SECONDS") {
        let seconds: f64 = seconds.parse().expect("VALET_FUZZ_SECONDS is a number");
        return Budget::Seconds(seconds);
    }
    let cases = var("VALET_FUZZ_CASES")
        .or_else(|| var("PROPTEST_CASES"))
        .map(|v| v.parse().expect("the case count is a number"))
        .unwrap_or(256);
    Budget::Cases(cases)
}

impl Fuzz {
    pub fn new(target: &'static str) -> Self {
        Self {
            target,
            props: Vec::new(),
        }
    }

    /// Add a property: `test` must hold for every value of `strategy`.
    pub fn prop<S>(
        mut self,
        name: &'static str,
        strategy: S,
        test: impl Fn(S::Value) -> TestCaseResult + 'static,
    ) -> Self
    where
        S: Strategy + 'static,
    {
        let target = self.target;
        // Proptest persists the seed of a failing case here and replays it first next time.
        let path: &'static str =
            Box::leak(format!("tests/fuzz/regressions/{target}-{name}.txt").into_boxed_str());
        let batch = move |cases: u32| {
            let config = Config {
                cases,
                failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
                // Shrinking a failure stops after a minute with the smallest input so far.
                max_shrink_time: 60_000,
                ..Config::default()
            };
            TestRunner::new(config)
                .run(&strategy, &test)
                .map_err(|e| format!("fuzz target {target}, property {name}: {e}"))
        };
        self.props.push((name, Box::new(batch)));
        self
    }

    /// Run every property; panics with proptest's report on the first failure.
    pub fn run(mut self) {
        let budget = budget();
        let started = Instant::now();
        let mut total = 0u64;
        let count = self.props.len() as f64;
        for (name, batch) in &mut self.props {
            let prop_started = Instant::now();
            let cases = match budget {
                Budget::Cases(cases) => {
                    batch(cases).unwrap_or_else(|e| panic!("{e}"));
                    u64::from(cases)
                }
                Budget::Seconds(seconds) => {
                    let until = prop_started + Duration::from_secs_f64(seconds / count);
                    let mut cases = 0u64;
                    let mut size = 16u32;
                    while Instant::now() < until {
                        let batch_started = Instant::now();
                        batch(size).unwrap_or_else(|e| panic!("{e}"));
                        cases += u64::from(size);
                        // Batches of about half a second: each replays the saved failures.
                        if batch_started.elapsed() < Duration::from_millis(250) {
                            size = size.saturating_mul(2).min(1 << 20);
                        }
                    }
                    cases
                }
            };
            let secs = prop_started.elapsed().as_secs_f64();
            total += cases;
            println!(
                "fuzz {}/{name}: {cases} cases in {secs:.1} s ({:.0}/s), 0 failures",
                self.target,
                cases as f64 / secs.max(1e-9)
            );
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "fuzz {}: {total} cases in {secs:.1} s ({:.0}/s), 0 failures",
            self.target,
            total as f64 / secs.max(1e-9)
        );
    }
}

/// The committed seed inputs of `target`, by file name, in name order.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seed inputs", dir.display());
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read a seed input"))
        })
        .collect()
}

/// A seed input as text; a trailing newline (editors add one) is not part of it.
pub fn corpus_text(target: &str) -> Vec<(String, String)> {
    corpus(target)
        .into_iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{name} is UTF-8"));
            let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            (name, text)
        })
        .collect()
}

/// Run `check` on every seed input, naming the one that fails.
pub fn replay<T: Debug>(inputs: Vec<(String, T)>, check: impl Fn(T) -> TestCaseResult) {
    for (name, input) in inputs {
        let shown = format!("{input:?}");
        if let Err(e) = check(input) {
            panic!("seed input {name} ({shown}) fails: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A protocol core in process, for the targets that need the key ring or the store.

pub const ISSUER: &str = "https://valet.example";
/// An API registered clients may use (`registration.audiences`).
pub const API: &str = "https://api.example.com";

/// A `Core` over an in-memory SQLite store, with the runtime its futures run on.
pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub core: Core,
}

impl Fixture {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut config = ValetConfig {
            secret: Some("fuzz-secret-0123456789abcdef0123456789abcdef".into()),
            database_url: "sqlite::memory:".into(),
            issuer: ISSUER.into(),
            ..ValetConfig::default()
        };
        config.password_hash.memory_kib = 1024;
        config.password_hash.iterations = 1;
        config.registration.mode = RegistrationMode::Open;
        config.registration.per_address = 1_000_000_000;
        config.registration.max_clients = 1_000_000_000;
        config.registration.audiences = vec![API.into()];
        let settings = config.validate().expect("a valid configuration");
        let core = rt
            .block_on(valet::app::build_core(settings, Clock::system()))
            .expect("the core builds");
        rt.block_on(core.store.insert_api(&valet::store::Api {
            identifier: API.into(),
            name: "Fuzz API".into(),
            scopes: valet::domain::ScopeSet::parse("read:things write:things").unwrap(),
            created_at: core.clock.now(),
        }))
        .expect("insert the API");
        Self { rt, core }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }
}

// ---------------------------------------------------------------------------------------------
// Generators shared by several targets.

/// Any string, weighted towards the characters parsers treat specially.
pub fn nasty_string(max: usize) -> impl Strategy<Value = String> + Clone {
    let special = prop::sample::select(vec![
        '\0',
        ' ',
        '\t',
        '\n',
        '\r',
        '%',
        '&',
        '=',
        '+',
        ':',
        '/',
        '?',
        '#',
        '@',
        '.',
        '"',
        '\\',
        '[',
        ']',
        '~',
        '\u{7f}',
        '\u{a0}',
        '\u{e9}',
        '\u{fffd}',
        '\u{1f600}',
        '\u{202e}',
    ]);
    let char = prop_oneof![
        4 => prop::char::range('!', '~'),
        2 => special,
        1 => any::<char>(),
    ];
    prop::collection::vec(char, 0..max).prop_map(|chars| chars.into_iter().collect())
}

/// `application/x-www-form-urlencoded` encoding of `text`, choosing per character between
/// the equivalent spellings (`+` or `%20`, upper or lower hex, literal or escaped) by the
/// bits of `style`.
pub fn form_encode(text: &str, style: u64) -> String {
    let mut out = String::new();
    for (i, byte) in text.bytes().enumerate() {
        let bit = |n: u32| style.rotate_left((i as u32).wrapping_mul(3).wrapping_add(n)) & 1 == 1;
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'*' | b'-' | b'.' | b'_');
        if byte == b' ' && bit(0) {
            out.push('+');
        } else if unreserved && !bit(1) {
            out.push(byte as char);
        } else if bit(2) {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Small random edits: the way a byte-level fuzzer mutates a real input.
#[derive(Debug, Clone)]
pub enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
}

pub fn edits() -> impl Strategy<Value = Vec<Edit>> + Clone {
    let interesting = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"%&=+.:/#?@ \0\xff\xc3\"\\{}[],-_~".to_vec()),
    ];
    let insert = prop::collection::vec(
        prop_oneof![
            4 => interesting.clone().prop_map(|b| vec![b]),
            1 => prop::sample::select(vec![
                b"%00".to_vec(), b"%".to_vec(), b"%zz".to_vec(), b"%C3%28".to_vec(),
                b"&&".to_vec(), b"==".to_vec(), b"..".to_vec(), b"%2e".to_vec(),
                b"\"\"".to_vec(), b"null".to_vec(), b"[]".to_vec(), b"{}".to_vec(),
            ]),
        ],
        1..3,
    )
    .prop_map(|parts| parts.concat());
    let edit = prop_oneof![
        (any::<usize>(), insert).prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1..8usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), interesting).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1..16usize).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ];
    prop::collection::vec(edit, 0..4)
}

/// `input` with `edits` applied (positions are taken modulo the length).
pub fn mutate(input: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = input.to_vec();
    for edit in edits {
        let at = |i: usize| {
            if out.is_empty() {
                0
            } else {
                i % (out.len() + 1)
            }
        };
        match edit {
            Edit::Insert(i, bytes) => {
                let i = at(*i);
                out.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i).min(out.len());
                let end = (i + n).min(out.len());
                out.drain(i..end);
            }
            Edit::Replace(i, b) => {
                if !out.is_empty() {
                    let i = i % out.len();
                    out[i] = *b;
                }
            }
            Edit::Truncate(i) => {
                let i = at(*i);
                out.truncate(i);
            }
            Edit::Duplicate(i, n) => {
                let i = at(*i).min(out.len());
                let end = (i + n).min(out.len());
                let copy = out[i..end].to_vec();
                out.splice(end..end, copy);
            }
        }
    }
    out
}

/// `mutate` for text; edits that break UTF-8 are repaired lossily.
pub fn mutate_text(input: &str, edits: &[Edit]) -> String {
    String::from_utf8_lossy(&mutate(input.as_bytes(), edits)).into_owned()
}

/// Every error description stays in the RFC 6749 §5.2 character set, and untrusted input is
/// never a server error.
pub fn check_error(e: &valet::oauth::OAuthError) -> TestCaseResult {
    prop_assert!(
        e.description
            .chars()
            .all(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')),
        "description outside the RFC 6749 charset: {:?}",
        e.description
    );
    prop_assert_ne!(e.code, valet::oauth::ErrorCode::ServerError, "{:?}", e);
    Ok(())
}

/// A client record as `valet client create` writes one: with a secret, or with `keys` for
/// `private_key_jwt`.
pub fn client(
    core: &Core,
    client_id: &str,
    grants: &[valet::domain::GrantType],
    keys: Option<valet::store::ClientKeys>,
) -> valet::store::Client {
    let now = core.clock.now();
    let secret_hash = keys.is_none().then(|| {
        core.server_keys
            .hasher
            .hash(&format!("secret of {client_id}"))
    });
    valet::store::Client {
        client_id: client_id.into(),
        client_name: client_id.into(),
        secret_hash,
        grant_types: grants.to_vec(),
        redirect_uris: vec![],
        scope: valet::domain::ScopeSet::parse("read:things openid").unwrap(),
        audiences: vec![API.into()],
        allowed_origins: vec![],
        first_party: false,
        logout: Default::default(),
        require_par: false,
        keys: keys.unwrap_or_default(),
        registration: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Base64url without padding, as JWTs use it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON value of any shape, for members whose type is being fuzzed.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        nasty_string(20).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(10), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
