//! `valet client …`: register and manage clients (RFC 7591 field names in `--json`).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliError, Context, output};
use crate::audit;
use crate::crypto::random_token;
use crate::domain::{GrantType, Origin, ScopeSet, UnknownGrantType, is_valid_client_id};
use crate::oauth::redirect;
use crate::store::{Client, ClientKeys, ClientLogout, StoreError};
use crate::tokens::client_keys::{check_jwks_uri, parse_jwks};

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

/// A new client id: 24 letters and digits (about 143 bits). Not base64url, whose `-` could
/// start an id and make it read as an option (`valet client show -K3J…`) or a flag to scripts.
fn new_client_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
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
            json,
        } => update(cx, &client_id, name, fields, json).await,
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
        created_at: now,
        updated_at: now,
    };
    let auth = apply(cx, &mut client, Some(name), fields).await?;
    let method = auth.method.unwrap_or(if auth.keys.is_some() {
        Method::PrivateKeyJwt
    } else {
        Method::Secret
    });
    // A fresh 256-bit secret from the OS CSPRNG; only its keyed hash is stored.
    let secret = set_auth_method(cx, &mut client, method, auth.keys)?;
    check_consistency(&client)?;
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
    json: bool,
) -> Result<(), CliError> {
    let mut client = find(cx, client_id).await?;
    let auth = apply(cx, &mut client, name, fields).await?;
    // New keys alone make the client a private_key_jwt one.
    let method = auth
        .method
        .or(auth.keys.is_some().then_some(Method::PrivateKeyJwt));
    // A client made confidential needs a secret: one is made and shown once.
    let secret = match method {
        Some(method) => set_auth_method(cx, &mut client, method, auth.keys)?,
        None => None,
    };
    check_consistency(&client)?;
    client.updated_at = super::now();
    if !cx.store.update_client(&client).await? {
        return Err(not_found(client_id));
    }
    print_client(&client, secret.as_deref(), json);
    Ok(())
}

/// How a client authenticates, as the options ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// client_secret_basic or client_secret_post: both are accepted from a client with a secret.
    Secret,
    PrivateKeyJwt,
    None,
}

/// What [`apply`] found about authentication: the method asked for and new keys, if any.
struct AuthOptions {
    method: Option<Method>,
    keys: Option<ClientKeys>,
}

/// Make `client` authenticate by `method`, with `keys` if given (else the ones it has).
/// Returns a newly made secret, to show once.
fn set_auth_method(
    cx: &Context,
    client: &mut Client,
    method: Method,
    keys: Option<ClientKeys>,
) -> Result<Option<String>, CliError> {
    if method != Method::PrivateKeyJwt && keys.is_some() {
        return Err(CliError::invalid(
            "--jwks-uri and --jwks-file are for --token-endpoint-auth-method private_key_jwt",
        ));
    }
    match method {
        Method::PrivateKeyJwt => {
            if let Some(keys) = keys {
                client.keys = keys;
            }
            if !client.keys.is_set() {
                return Err(CliError::invalid(
                    "private_key_jwt needs the client's public keys: --jwks-uri URI or --jwks-file FILE",
                ));
            }
            client.secret_hash = None;
            Ok(None)
        }
        Method::None => {
            client.keys = ClientKeys::default();
            client.secret_hash = None;
            Ok(None)
        }
        Method::Secret => {
            client.keys = ClientKeys::default();
            if client.secret_hash.is_some() {
                return Ok(None);
            }
            let secret = random_token()?;
            client.secret_hash = Some(cx.server_keys()?.hasher.hash(&secret));
            Ok(Some(secret))
        }
    }
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
        return Err(not_found(client_id));
    }
    print_client(&client, Some(&secret), json);
    Ok(())
}

/// Copy the given options onto the client, validating each. Authentication (method and keys)
/// is returned for the caller to apply.
async fn apply(
    cx: &Context,
    client: &mut Client,
    name: Option<String>,
    fields: ClientFields,
) -> Result<AuthOptions, CliError> {
    if let Some(name) = name {
        if name.trim().is_empty() {
            return Err(CliError::invalid("--name must not be empty"));
        }
        client.client_name = name;
    }
    if let Some(grants) = fields.grant_types {
        let mut parsed = Vec::new();
        for g in grants.iter().filter(|g| !g.is_empty()) {
            let grant: GrantType = g
                .parse()
                .map_err(|e: UnknownGrantType| CliError::invalid(e.to_string()))?;
            if !parsed.contains(&grant) {
                parsed.push(grant);
            }
        }
        client.grant_types = parsed;
    }
    if let Some(uris) = fields.redirect_uris {
        let uris: Vec<String> = uris.into_iter().filter(|u| !u.is_empty()).collect();
        for uri in &uris {
            redirect::validate_registration(uri).map_err(CliError::Invalid)?;
        }
        client.redirect_uris = uris;
    }
    if let Some(scope) = fields.scope {
        client.scope =
            ScopeSet::parse(&scope).map_err(|e| CliError::invalid(format!("--scope: {e}")))?;
    }
    if let Some(audiences) = fields.audiences {
        let audiences: Vec<String> = audiences.into_iter().filter(|a| !a.is_empty()).collect();
        for audience in &audiences {
            if cx.store.api(audience).await?.is_none() {
                return Err(CliError::NotFound(format!(
                    "no API with identifier `{audience}`; create it first with `valet api create`"
                )));
            }
        }
        client.audiences = audiences;
    }
    if let Some(origins) = fields.allowed_origins {
        let origins: Vec<String> = origins.into_iter().filter(|o| !o.is_empty()).collect();
        for origin in &origins {
            if Origin::parse(origin).is_none() {
                return Err(CliError::invalid(format!(
                    "--allowed-origin `{origin}` is not an origin: write scheme://host[:port], e.g. https://app.example.com, with no path"
                )));
            }
        }
        client.allowed_origins = origins;
    }
    if let Some(uris) = fields.post_logout_redirect_uris {
        let uris: Vec<String> = uris.into_iter().filter(|u| !u.is_empty()).collect();
        for uri in &uris {
            redirect::validate_registration(uri)
                .map_err(|e| CliError::invalid(format!("--post-logout-redirect-uri: {e}")))?;
        }
        client.logout.post_logout_redirect_uris = uris;
    }
    if let Some(uri) = fields.backchannel_logout_uri {
        if !uri.is_empty() && !is_backchannel_uri(&uri) {
            return Err(CliError::invalid(format!(
                "--backchannel-logout-uri `{uri}` must be an absolute https URI without a fragment (http only on a loopback host)"
            )));
        }
        client.logout.backchannel_logout_uri = Some(uri).filter(|u| !u.is_empty());
    }
    if let Some(first_party) = fields.first_party {
        client.first_party = first_party;
    }
    if let Some(require_par) = fields.require_par {
        client.require_par = require_par;
    }
    let method = match fields.token_endpoint_auth_method.as_deref() {
        None => None,
        Some("client_secret_basic" | "client_secret_post") => Some(Method::Secret),
        Some("private_key_jwt") => Some(Method::PrivateKeyJwt),
        Some("none") => Some(Method::None),
        Some(other) => {
            return Err(CliError::invalid(format!(
                "--token-endpoint-auth-method `{other}` is not one of client_secret_basic, client_secret_post, private_key_jwt, none"
            )));
        }
    };
    let public = fields
        .public
        .map(|p| if p { Method::None } else { Method::Secret });
    let method = match (method, public) {
        (Some(m), Some(p)) if m != p => {
            return Err(CliError::invalid(
                "--public contradicts --token-endpoint-auth-method",
            ));
        }
        (m, p) => m.or(p),
    };
    let keys = if let Some(uri) = fields.jwks_uri {
        check_jwks_uri(&uri).map_err(|e| CliError::invalid(format!("--jwks-uri: {e}")))?;
        Some(ClientKeys {
            jwks: None,
            jwks_uri: Some(uri),
        })
    } else if let Some(path) = fields.jwks_file {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::invalid(format!("--jwks-file {}: {e}", path.display())))?;
        parse_jwks(&text)
            .map_err(|e| CliError::invalid(format!("--jwks-file {}: {e}", path.display())))?;
        // Stored compact, as one line of JSON.
        let compact = serde_json::from_str::<Value>(&text)
            .map(|v| v.to_string())
            .unwrap_or(text);
        Some(ClientKeys {
            jwks: Some(compact),
            jwks_uri: None,
        })
    } else {
        None
    };
    Ok(AuthOptions { method, keys })
}

/// Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment, reached server to server
/// with the logout token in it, so https (plain http only to this machine).
fn is_backchannel_uri(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
        || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    url.fragment().is_none() && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// Rules that involve several fields at once.
fn check_consistency(client: &Client) -> Result<(), CliError> {
    if client.grant_types.is_empty() {
        return Err(CliError::invalid(
            "a client needs at least one --grant-type",
        ));
    }
    if client.is_public()
        && let Some(g) = client
            .grant_types
            .iter()
            .find(|g| g.needs_confidential_client())
    {
        return Err(CliError::invalid(format!(
            "a public client may not use the {g} grant: it has no secret to authenticate with"
        )));
    }
    if client.keys.is_set() && client.secret_hash.is_some() {
        return Err(CliError::invalid(
            "a client authenticates with a secret or with private_key_jwt keys, not both",
        ));
    }
    if client.redirect_uris.is_empty()
        && let Some(g) = client.grant_types.iter().find(|g| g.uses_redirect())
    {
        return Err(CliError::invalid(format!(
            "the {g} grant needs at least one --redirect-uri"
        )));
    }
    Ok(())
}

/// RFC 7591 §3.2.1 names, plus `audiences` and `first_party`.
pub fn client_json(client: &Client, secret: Option<&str>) -> Value {
    let mut value = json!({
        "client_id": client.client_id,
        "client_name": client.client_name,
        "client_id_issued_at": client.created_at.0,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": client.response_types(),
        "scope": client.scope.to_string(),
        "token_endpoint_auth_method": client.token_endpoint_auth_method(),
        "audiences": client.audiences,
        "allowed_origins": client.allowed_origins,
        "first_party": client.first_party,
        "post_logout_redirect_uris": client.logout.post_logout_redirect_uris,
        "require_pushed_authorization_requests": client.require_par,
    });
    if let (Some(uri), Value::Object(map)) = (&client.keys.jwks_uri, &mut value) {
        map.insert("jwks_uri".into(), json!(uri));
    }
    if let (Some(jwks), Value::Object(map)) = (&client.keys.jwks, &mut value) {
        let jwks: Value = serde_json::from_str(jwks).unwrap_or_else(|_| json!(jwks));
        map.insert("jwks".into(), jwks);
    }
    if let (Some(uri), Value::Object(map)) = (&client.logout.backchannel_logout_uri, &mut value) {
        map.insert("backchannel_logout_uri".into(), json!(uri));
        // Back-Channel Logout 1.0 §2.2: Valet's logout tokens always carry `sid`.
        map.insert("backchannel_logout_session_required".into(), json!(true));
    }
    if let (Some(secret), Value::Object(map)) = (secret, &mut value) {
        map.insert("client_secret".into(), json!(secret));
        // RFC 7591: 0 means the secret does not expire.
        map.insert("client_secret_expires_at".into(), json!(0));
    }
    value
}

fn print_client(client: &Client, secret: Option<&str>, json: bool) {
    if json {
        output::json(&client_json(client, secret));
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
            clients.iter().map(|c| client_json(c, None)).collect(),
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
            ]
        })
        .collect();
    output::table(
        &["CLIENT_ID", "NAME", "TYPE", "GRANT TYPES", "AUDIENCES"],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{ClientCommand, new_client_id};
    use crate::cli::{Cli, Command};

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
