//! `valet keys …`: the signing keys every replica shares through the store.

use clap::Subcommand;
use serde_json::{Value, json};

use super::{CliError, Context, output};
use crate::audit;
use crate::domain::SigningAlg;
use crate::store::StoredKey;
use crate::tokens::keys;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys, the current one first
    List {
        #[arg(long)]
        json: bool,
    },
    /// Publish a new key that signs after keys.activation_delay; the old one stays
    /// published until its tokens expire
    Rotate {
        /// Algorithm of the new key [default: tokens.signing_alg]
        #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"])]
        alg: Option<String>,
        /// Make the new key current at once (the old one may be compromised); verifiers
        /// that cached the JWKS refetch it on the unknown kid
        #[arg(long)]
        now: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cx: &Context, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::List { json } => {
            let rows = cx.store.signing_keys().await?;
            if json {
                output::json(&Value::Array(rows.iter().map(key_json).collect()));
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|k| {
                        vec![
                            k.kid.clone(),
                            k.alg.clone(),
                            k.status.as_str().into(),
                            k.created_at.to_rfc3339(),
                            k.activates_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["KID", "ALG", "STATUS", "CREATED", "ACTIVATES"], &table);
            }
            Ok(())
        }
        KeysCommand::Rotate { alg, now, json } => {
            let alg = match alg {
                Some(text) => SigningAlg::parse(&text)
                    .ok_or_else(|| CliError::invalid(format!("unknown --alg {text}")))?,
                None => cx.settings.tokens.signing_alg,
            };
            let server_keys = cx.server_keys()?;
            let started = super::now();
            let activates_at = (!now).then(|| started.plus(cx.settings.keys.activation_delay));
            let key = keys::rotate(&cx.store, &server_keys.sealer, alg, started, activates_at)
                .await
                .map_err(|e| CliError::Other(e.to_string()))?;
            audit::key_rotated(&key.kid, &key.alg);
            if json {
                output::json(&key_json(&key));
            } else if let Some(at) = key.activates_at {
                println!(
                    "new key {} ({}) published now; it signs from {} (servers publish it \
                     within keys.reload_interval)",
                    key.kid,
                    key.alg,
                    at.to_rfc3339()
                );
            } else {
                println!(
                    "new current key {} ({}); servers pick it up within keys.reload_interval",
                    key.kid, key.alg
                );
            }
            Ok(())
        }
    }
}

fn key_json(key: &StoredKey) -> Value {
    let mut object = json!({
        "kid": key.kid,
        "alg": key.alg,
        "status": key.status.as_str(),
        "created_at": key.created_at.to_rfc3339(),
    });
    if let (Some(at), Value::Object(map)) = (key.activates_at, &mut object) {
        map.insert("activates_at".into(), json!(at.to_rfc3339()));
    }
    object
}
