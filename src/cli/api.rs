//! `valet api …`: the resource servers tokens are issued for, and the scopes they define.

use clap::Subcommand;
use serde_json::{Value, json};

use super::{CliError, Context, output};
use crate::domain::ScopeSet;
use crate::oauth::scope::is_resource_indicator;
use crate::store::{Api, StoreError};

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Register an API
    Create {
        /// The API's identifier, an absolute URI: the `aud` of its tokens
        #[arg(long, value_name = "URI")]
        identifier: String,
        /// Display name
        #[arg(long)]
        name: String,
        /// The scopes it defines, space-delimited, e.g. "read:contacts create:contacts"
        #[arg(long, value_name = "\"S1 S2\"")]
        scope: String,
        #[arg(long)]
        json: bool,
    },
    /// List APIs
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one API
    Show {
        #[arg(value_name = "URI")]
        identifier: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an API; token requests for it then fail with invalid_target
    Delete {
        #[arg(value_name = "URI")]
        identifier: String,
    },
}

pub async fn run(cx: &Context, command: ApiCommand) -> Result<(), CliError> {
    match command {
        ApiCommand::Create {
            identifier,
            name,
            scope,
            json,
        } => {
            check_identifier(&identifier)?;
            if name.trim().is_empty() {
                return Err(CliError::invalid("--name must not be empty"));
            }
            let scopes =
                ScopeSet::parse(&scope).map_err(|e| CliError::invalid(format!("--scope: {e}")))?;
            let api = Api {
                identifier,
                name,
                scopes,
                created_at: super::now(),
            };
            match cx.store.insert_api(&api).await {
                Err(StoreError::Conflict) => {
                    return Err(CliError::Conflict(format!(
                        "an API with identifier `{}` already exists",
                        api.identifier
                    )));
                }
                other => other?,
            }
            print_api(&api, json);
            Ok(())
        }
        ApiCommand::List { json } => {
            let apis = cx.store.apis().await?;
            if json {
                output::json(&Value::Array(apis.iter().map(api_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = apis
                    .iter()
                    .map(|a| vec![a.identifier.clone(), a.name.clone(), a.scopes.to_string()])
                    .collect();
                output::table(&["IDENTIFIER", "NAME", "SCOPES"], &rows);
            }
            Ok(())
        }
        ApiCommand::Show { identifier, json } => {
            let api = cx
                .store
                .api(&identifier)
                .await?
                .ok_or_else(|| not_found(&identifier))?;
            print_api(&api, json);
            Ok(())
        }
        ApiCommand::Delete { identifier } => {
            if !cx.store.delete_api(&identifier).await? {
                return Err(not_found(&identifier));
            }
            println!("deleted API {identifier}");
            Ok(())
        }
    }
}

fn check_identifier(identifier: &str) -> Result<(), CliError> {
    if is_resource_indicator(identifier) {
        return Ok(());
    }
    Err(CliError::invalid(format!(
        "--identifier `{identifier}` must be an absolute URI without a fragment, e.g. https://contacts.example.com"
    )))
}

fn not_found(identifier: &str) -> CliError {
    CliError::NotFound(format!("no API with identifier `{identifier}`"))
}

fn api_json(api: &Api) -> Value {
    json!({
        "identifier": api.identifier,
        "name": api.name,
        "scopes": api.scopes.iter().collect::<Vec<_>>(),
    })
}

fn print_api(api: &Api, json: bool) {
    if json {
        output::json(&api_json(api));
        return;
    }
    output::fields(&[
        ("identifier", api.identifier.clone()),
        ("name", api.name.clone()),
        ("scopes", api.scopes.to_string()),
        ("created", api.created_at.to_rfc3339()),
    ]);
}
