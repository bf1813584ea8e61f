//! `valet client …`: register and manage clients (RFC 7591 field names in `--json`).

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{CliError, Context, output};
use crate::audit;
use crate::crypto::random_token;
use crate::domain::{GrantType, ScopeSet, is_valid_client_id};
use crate::oauth::client_metadata::{
    self, AuthMethod, KeysInput, MetadataChange, MetadataError, Problem, new_client_id,
};
use crate::store::{Client, ClientLogout, StoreError};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once
    Create {
        /// Display name, shown to users on the consent page
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: ClientFields,
        /// Choose the client id (printable ASCII, no spaces) instead of a random one
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// Print one JSON object (RFC 7591 names)
        #[arg(long)]
        json: bool,
    },
    /// List clients
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client (never its secret)
    Show {
        /// The client id (one that starts with `-` works too)
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a client: each option given replaces that field
    Update {
        /// The client id (one that starts with `-` works too)
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: ClientFields,
        /// A client that registered itself (RFC 7591): its registration access token stops
        /// working, so it can no longer read, change or delete its registration
        #[arg(long)]
        revoke_registration_token: bool,
        #[arg(long)]
        json: bool,
    },
    /// Replace a confidential client's secret; the new one is printed once
    RotateSecret {
        /// The client id (one that starts with `-` works too)
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its consents, grants, codes and refresh tokens
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientFields {
    /// Grant type the client may use (repeat or comma-separate): authorization_code, implicit,
    /// password, client_credentials, refresh_token, urn:ietf:params:oauth:grant-type:device_code
    /// [default for a new client: authorization_code]
    #[arg(long = "grant-type", value_name = "G", value_delimiter = ',')]
    grant_types: Option<Vec<String>>,
    /// Redirect URI, matched exactly (repeat or comma-separate)
    #[arg(long = "redirect-uri", value_name = "URI", value_delimiter = ',')]
    redirect_uris: Option<Vec<String>>,
    /// Scopes the client may be granted, space-delimited, e.g. "read:contacts openid"
    #[arg(long, value_name = "\"S1 S2\"")]
    scope: Option<String>,
    /// API identifier the client may request tokens for (repeat or comma-separate)
    #[arg(long = "audience", value_name = "API_ID", value_delimiter = ',')]
    audiences: Option<Vec<String>>,
    /// Browser origin (scheme://host[:port]) allowed to call /token and /revoke from
    /// JavaScript (CORS; repeat or comma-separate)
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Where the end-session endpoint may send the browser after sign-out, matched exactly
    /// (RP-Initiated Logout; repeat or comma-separate)
    #[arg(
        long = "post-logout-redirect-uri",
        value_name = "URI",
        value_delimiter = ','
    )]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Where logout tokens are posted when a session this client signed in through ends
    /// (Back-Channel Logout; https, or http on a loopback host; "" removes it)
    #[arg(long = "backchannel-logout-uri", value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// Require pushed authorization requests (RFC 9126): /authorize only with a request_uri
    /// from the pushed authorization request endpoint
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    require_par: Option<bool>,
    /// How the client authenticates at the token endpoint: client_secret_basic or
    /// client_secret_post (a secret), private_key_jwt (signed assertions, RFC 7523; needs
    /// --jwks-uri or --jwks-file), none (public)
    #[arg(long, value_name = "METHOD")]
    token_endpoint_auth_method: Option<String>,
    /// Where the client's public JWK Set is (private_key_jwt; https, or http on a loopback
    /// host)
    #[arg(long, value_name = "URI", conflicts_with = "jwks_file")]
    jwks_uri: Option<String>,
    /// A file holding the client's public JWK Set (private_key_jwt), stored inline
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<std::path::PathBuf>,
    /// A public client (no secret, PKCE required): a browser or mobile app
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    public: Option<bool>,
    /// A first-party client: its users are never asked for consent
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    first_party: Option<bool>,
}

pub async fn run(cx: &Context, command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Create {
            name,
            fields,
            client_id,
            json,
        } => create(cx, name, fields, client_id, json).await,
        ClientCommand::List { json } => list(cx, json).await,
        ClientCommand::Show { client_id, json } => {
            let client = find(cx, &client_id).await?;
            print_client(&client, None, json);
            Ok(())
        }
        ClientCommand::Update {
            client_id,
            name,
            fields,
            revoke_registration_token,
            json,
        } => {
            update(
                cx,
                &client_id,
                name,
                fields,
                revoke_registration_token,
                json,
            )
            .await
        }
        ClientCommand::RotateSecret { client_id, json } => {
            rotate_secret(cx, &client_id, json).await
        }
        ClientCommand::Delete { client_id } => {
            if !cx.store.delete_client(&client_id).await? {
                return Err(not_found(&client_id));
            }
            audit::client_deleted(&client_id);
            println!("deleted client {client_id}");
            Ok(())
        }
    }
}

fn not_found(client_id: &str) -> CliError {
    CliError::NotFound(format!("no client with id `{client_id}`"))
}

/// An update found the client gone or changed since it was read (the write names the
/// revision it read): nothing was written.
fn changed_meanwhile(client_id: &str) -> CliError {
    CliError::Conflict(format!(
        "client `{client_id}` was changed or deleted while this command ran; nothing was written, run it again"
    ))
}

async fn find(cx: &Context, client_id: &str) -> Result<Client, CliError> {
    cx.store
        .client(client_id)
        .await?
        .ok_or_else(|| not_found(client_id))
}

async fn create(
    cx: &Context,
    name: String,
    fields: ClientFields,
    client_id: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let client_id = match client_id {
        Some(id) if is_valid_client_id(&id) => id,
        Some(_) => {
            return Err(CliError::invalid(
                "--client-id must be 1 to 255 printable ASCII characters without spaces",
            ));
        }
        None => new_client_id(),
    };
    let now = super::now();
    let mut client = Client {
        client_id,
        client_name: String::new(),
        secret_hash: None,
        grant_types: vec![GrantType::AuthorizationCode],
        redirect_uris: vec![],
        scope: ScopeSet::default(),
        audiences: vec![],
        allowed_origins: vec![],
        first_party: false,
        logout: ClientLogout::default(),
        require_par: false,
        keys: Default::default(),
        registration: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    };
    let mut change = metadata_change(Some(name), fields)?;
    // A new client has a secret unless told otherwise (keys alone mean private_key_jwt).
    if change.auth_method.is_none() && change.keys.is_none() {
        change.auth_method = Some(AuthMethod::Secret);
    }
    let secret = apply(cx, &mut client, change).await?;
    // Client ids and user ids are one namespace of `sub` values (RFC 9068 §2.2): a
    // client-credentials token must never look like a user's. The store refuses it too.
    if cx.store.user_by_id(&client.client_id).await?.is_some() {
        return Err(CliError::Conflict(format!(
            "`{}` is the id of a user: a client id may not equal a user id",
            client.client_id
        )));
    }
    match cx.store.insert_client(&client).await {
        Err(StoreError::Conflict) => Err(CliError::Conflict(format!(
            "a client or user with id `{}` already exists",
            client.client_id
        ))),
        other => other.map_err(CliError::from),
    }?;
    audit::client_created(&client.client_id);
    print_client(&client, secret.as_deref(), json);
    Ok(())
}

async fn update(
    cx: &Context,
    client_id: &str,
    name: Option<String>,
    fields: ClientFields,
    revoke_registration_token: bool,
    json: bool,
) -> Result<(), CliError> {
    let mut client = find(cx, client_id).await?;
    if revoke_registration_token {
        let Some(registration) = &mut client.registration else {
            return Err(CliError::invalid(format!(
                "client `{client_id}` did not register itself: it has no registration access token"
            )));
        };
        registration.access_token_hash = None;
    }
    let change = metadata_change(name, fields)?;
    // A client made confidential needs a secret: one is made and shown once.
    let secret = apply(cx, &mut client, change).await?;
    client.updated_at = super::now();
    if !cx.store.update_client(&client).await? {
        return Err(changed_meanwhile(client_id));
    }
    print_client(&client, secret.as_deref(), json);
    Ok(())
}

/// The shared metadata rules ([`client_metadata::apply`]), their errors in the CLI's terms.
async fn apply(
    cx: &Context,
    client: &mut Client,
    change: MetadataChange,
) -> Result<Option<String>, CliError> {
    let keys = cx.server_keys()?;
    client_metadata::apply(client, change, cx.store.as_ref(), &keys.hasher)
        .await
        .map_err(|e| match e {
            MetadataError::Invalid {
                field,
                problem: Problem::UnknownApi,
                message,
            } => CliError::NotFound(format!("{}: {message}", field.option())),
            MetadataError::Invalid { field, message, .. } => {
                CliError::Invalid(format!("{}: {message}", field.option()))
            }
            MetadataError::Store(e) => e.into(),
            MetadataError::Random => CliError::Other("the OS random source failed".into()),
        })
}

async fn rotate_secret(cx: &Context, client_id: &str, json: bool) -> Result<(), CliError> {
    let mut client = find(cx, client_id).await?;
    if client.secret_hash.is_none() {
        return Err(CliError::invalid(format!(
            "client `{client_id}` has no secret to rotate (it authenticates with {})",
            client.token_endpoint_auth_method()
        )));
    }
    let secret = random_token()?;
    client.secret_hash = Some(cx.server_keys()?.hasher.hash(&secret));
    client.updated_at = super::now();
    if !cx.store.update_client(&client).await? {
        return Err(changed_meanwhile(client_id));
    }
    print_client(&client, Some(&secret), json);
    Ok(())
}

/// The options as a metadata change: `--public` and `--jwks-file` resolved here, every check
/// left to the shared rules.
fn metadata_change(name: Option<String>, fields: ClientFields) -> Result<MetadataChange, CliError> {
    let method = fields
        .token_endpoint_auth_method
        .as_deref()
        .map(|m| {
            m.parse::<AuthMethod>()
                .map_err(|e| CliError::invalid(format!("--token-endpoint-auth-method {e}")))
        })
        .transpose()?;
    let public = fields.public.map(|p| {
        if p {
            AuthMethod::None
        } else {
            AuthMethod::Secret
        }
    });
    let auth_method = match (method, public) {
        (Some(m), Some(p)) if m != p => {
            return Err(CliError::invalid(
                "--public contradicts --token-endpoint-auth-method",
            ));
        }
        (m, p) => m.or(p),
    };
    let keys = match (fields.jwks_uri, fields.jwks_file) {
        (Some(uri), _) => Some(KeysInput::JwksUri(uri)),
        (None, Some(path)) => Some(KeysInput::Jwks(
            std::fs::read_to_string(&path)
                .map_err(|e| CliError::invalid(format!("--jwks-file {}: {e}", path.display())))?,
        )),
        (None, None) => None,
    };
    Ok(MetadataChange {
        client_name: name,
        grant_types: fields.grant_types,
        response_types: None,
        redirect_uris: fields.redirect_uris,
        scope: fields.scope,
        audiences: fields.audiences,
        allowed_origins: fields.allowed_origins,
        post_logout_redirect_uris: fields.post_logout_redirect_uris,
        backchannel_logout_uri: fields.backchannel_logout_uri,
        require_par: fields.require_par,
        first_party: fields.first_party,
        auth_method,
        keys,
    })
}

fn print_client(client: &Client, secret: Option<&str>, json: bool) {
    if json {
        output::json(&client_metadata::to_json(client, secret));
        return;
    }
    let grants: Vec<String> = client.grant_types.iter().map(|g| g.to_string()).collect();
    let mut rows = vec![
        ("client_id", client.client_id.clone()),
        ("name", client.client_name.clone()),
        (
            "type",
            if client.is_public() {
                "public".into()
            } else {
                "confidential".into()
            },
        ),
        ("auth method", client.token_endpoint_auth_method().into()),
        (
            "keys",
            match (&client.keys.jwks_uri, &client.keys.jwks) {
                (Some(uri), _) => uri.clone(),
                (None, Some(_)) => "inline JWK Set".into(),
                (None, None) => "-".into(),
            },
        ),
        ("grant types", output::list(&grants)),
        ("redirect uris", output::list(&client.redirect_uris)),
        (
            "scope",
            if client.scope.is_empty() {
                "-".into()
            } else {
                client.scope.to_string()
            },
        ),
        ("audiences", output::list(&client.audiences)),
        (
            "post-logout uris",
            output::list(&client.logout.post_logout_redirect_uris),
        ),
        (
            "backchannel logout",
            client
                .logout
                .backchannel_logout_uri
                .clone()
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "first party",
            if client.first_party {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        (
            "registered",
            if client.is_registered() {
                "itself (RFC 7591)".into()
            } else {
                "by an administrator".into()
            },
        ),
        ("created", client.created_at.to_rfc3339()),
    ];
    if let Some(secret) = secret {
        rows.push(("client_secret", secret.to_owned()));
    }
    output::fields(&rows);
    if secret.is_some() {
        println!(
            "\nThe client secret is shown only now: it cannot be shown again. Store it safely."
        );
    }
}

async fn list(cx: &Context, json: bool) -> Result<(), CliError> {
    let clients = cx.store.clients().await?;
    if json {
        output::json(&Value::Array(
            clients
                .iter()
                .map(|c| client_metadata::to_json(c, None))
                .collect(),
        ));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            vec![
                c.client_id.clone(),
                c.client_name.clone(),
                if c.is_public() {
                    "public".into()
                } else {
                    "confidential".into()
                },
                c.grant_types
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                output::list(&c.audiences),
                if c.is_registered() {
                    "itself".into()
                } else {
                    "admin".into()
                },
            ]
        })
        .collect();
    output::table(
        &[
            "CLIENT_ID",
            "NAME",
            "TYPE",
            "GRANT TYPES",
            "AUDIENCES",
            "REGISTERED BY",
        ],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ClientCommand;
    use crate::cli::{Cli, Command};
    use crate::oauth::client_metadata::new_client_id;

    fn client_command(args: &[&str]) -> ClientCommand {
        let cli = Cli::try_parse_from([&["valet", "client"], args].concat()).unwrap();
        match cli.command {
            Command::Client(command) => *command,
            other => panic!("not a client command: {other:?}"),
        }
    }

    #[test]
    fn generated_ids_are_letters_and_digits() {
        for _ in 0..200 {
            let id = new_client_id();
            assert_eq!(id.len(), 24);
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        }
    }

    #[test]
    fn an_id_starting_with_a_hyphen_is_an_id_not_an_option() {
        let ClientCommand::Show { client_id, json } = client_command(&["show", "-K3J", "--json"])
        else {
            panic!("show");
        };
        assert_eq!((client_id.as_str(), json), ("-K3J", true));
        let ClientCommand::RotateSecret { client_id, json } =
            client_command(&["rotate-secret", "--json", "-x"])
        else {
            panic!("rotate-secret");
        };
        assert_eq!((client_id.as_str(), json), ("-x", true));
        let ClientCommand::Delete { client_id } = client_command(&["delete", "--", "-y"]) else {
            panic!("delete");
        };
        assert_eq!(client_id, "-y");
    }
}
