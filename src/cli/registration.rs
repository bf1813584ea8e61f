//! `valet registration …`: initial access tokens for dynamic client registration (RFC 7591
//! §3, `registration.mode = "token"`).

use clap::Subcommand;
use serde_json::json;

use super::{CliError, Context, output};
use crate::config::{ConfigDuration, RegistrationMode};
use crate::domain::UnixTime;
use crate::oauth::registration::create_initial_token;

#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Manage initial access tokens
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue an initial access token; it is printed once (only its hash is kept)
    Create {
        /// How long it stays valid, e.g. "1h", "7d"
        #[arg(long, value_name = "D", default_value = "1d")]
        ttl: String,
        /// How many clients it may register
        #[arg(long, value_name = "N", default_value_t = 1)]
        uses: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cx: &Context, command: RegistrationCommand) -> Result<(), CliError> {
    let RegistrationCommand::Token(TokenCommand::Create { ttl, uses, json }) = command;
    let ttl = ConfigDuration::parse(&ttl)
        .filter(|d| !d.0.is_zero())
        .ok_or_else(|| {
            CliError::invalid(format!(
                "--ttl `{ttl}` is not a duration like \"90s\", \"15m\", \"1h\" or \"30d\""
            ))
        })?;
    if uses == 0 {
        return Err(CliError::invalid("--uses must be at least 1"));
    }
    let now = super::now();
    let expires_at = UnixTime(
        now.0
            .saturating_add(i64::try_from(ttl.0.as_secs()).unwrap_or(i64::MAX)),
    );
    let keys = cx.server_keys()?;
    let token = create_initial_token(cx.store.as_ref(), &keys.hasher, uses, now, expires_at)
        .await
        .map_err(|e| CliError::Other(e.to_string()))?;
    if json {
        output::json(&json!({
            "initial_access_token": token,
            "uses": uses,
            "expires_at": expires_at.0,
        }));
    } else {
        output::fields(&[
            ("initial access token", token),
            ("uses", uses.to_string()),
            ("expires", expires_at.to_rfc3339()),
        ]);
        println!(
            "\nThe token is shown only now. Send it as `Authorization: Bearer <token>` to the registration endpoint."
        );
    }
    if cx.settings.registration.mode != RegistrationMode::Token {
        eprintln!(
            "warning: registration.mode is not \"token\", so the registration endpoint does not ask for this token"
        );
    }
    Ok(())
}
