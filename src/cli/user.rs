//! `valet user …`: the people who log in. Passwords are hashed with Argon2id.

use std::io::BufRead;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};

use super::claims::ClaimFlags;
use super::{CliError, Context, output};
use crate::login::password;
use crate::store::{ClaimEdit, StoreError, User, UserProfile};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user
    Create {
        /// Unique login name
        #[arg(long)]
        username: String,
        #[command(flatten)]
        claims: Box<ClaimFlags>,
        #[command(flatten)]
        password: PasswordInput,
        #[arg(long)]
        json: bool,
    },
    /// Change a user's OpenID claims: each option given replaces that claim (an empty value
    /// clears it)
    Update {
        /// The user's login name
        #[arg(allow_hyphen_values = true)]
        username: String,
        #[command(flatten)]
        claims: Box<ClaimFlags>,
        #[arg(long)]
        json: bool,
    },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one user
    Show {
        #[arg(allow_hyphen_values = true)]
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password; ends the user's sessions and refresh tokens
    SetPassword {
        #[arg(allow_hyphen_values = true)]
        username: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Stop a user from logging in; ends the user's sessions and refresh tokens
    Disable {
        #[arg(allow_hyphen_values = true)]
        username: String,
    },
    /// Let a disabled user log in again
    Enable {
        #[arg(allow_hyphen_values = true)]
        username: String,
    },
    /// Delete a user with their sessions, consents and tokens; their id is never reused
    Delete {
        #[arg(allow_hyphen_values = true)]
        username: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("password_source").required(true).args(["password_stdin", "password"])))]
pub struct PasswordInput {
    /// Read the password from standard input, up to the first newline
    #[arg(long)]
    password_stdin: bool,
    /// The password itself (visible to other local users in the process list: prefer --password-stdin)
    #[arg(long, value_name = "PW")]
    password: Option<String>,
}

impl PasswordInput {
    fn read(self) -> Result<String, CliError> {
        if let Some(password) = self.password {
            eprintln!(
                "warning: --password is visible to other local users; prefer --password-stdin"
            );
            return Ok(password);
        }
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            CliError::Other(format!(
                "could not read the password from standard input: {e}"
            ))
        })?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
    }
}

pub async fn run(cx: &Context, command: UserCommand) -> Result<(), CliError> {
    let now = super::now();
    match command {
        UserCommand::Create {
            username,
            claims,
            password,
            json,
        } => {
            check_username(&username)?;
            // Every flag is checked before the password is read or anything is written.
            let edits = claims.edits()?;
            if edits.contains(&ClaimEdit::EmailVerified(true))
                && !edits.iter().any(|e| matches!(e, ClaimEdit::Email(Some(_))))
            {
                return Err(CliError::invalid(
                    "--email-verified true needs the --email it is about",
                ));
            }
            let hash = hash(cx, password.read()?).await?;
            let mut user = User {
                id: new_user_id(cx).await?,
                username,
                email: None,
                name: None,
                profile: UserProfile::default(),
                password_hash: hash,
                disabled: false,
                created_at: now,
                updated_at: now,
            };
            ClaimEdit::apply_all(&edits, &mut user);
            match cx.store.insert_user(&user).await {
                Err(StoreError::Conflict) => {
                    return Err(CliError::Conflict(format!(
                        "user `{}` already exists",
                        user.username
                    )));
                }
                other => other?,
            }
            print_user(&user, json);
            Ok(())
        }
        UserCommand::Update {
            username,
            claims,
            json,
        } => {
            let edits = claims.edits()?;
            if edits.is_empty() {
                return Err(CliError::invalid(
                    "nothing to change: give at least one claim option (see `valet user update --help`)",
                ));
            }
            let updated = cx.store.update_user_claims(&username, &edits, now).await?;
            print_user(&updated.ok_or_else(|| not_found(&username))?, json);
            Ok(())
        }
        UserCommand::List { json } => list(cx, json).await,
        UserCommand::Show { username, json } => {
            print_user(&find(cx, &username).await?, json);
            Ok(())
        }
        UserCommand::SetPassword { username, password } => {
            let hash = hash(cx, password.read()?).await?;
            found(
                cx.store.set_user_password(&username, &hash, now).await?,
                &username,
            )?;
            println!("password set for {username}; their sessions and refresh tokens ended");
            Ok(())
        }
        UserCommand::Disable { username } => {
            found(
                cx.store.set_user_disabled(&username, true, now).await?,
                &username,
            )?;
            println!("disabled {username}; their sessions and refresh tokens ended");
            Ok(())
        }
        UserCommand::Enable { username } => {
            found(
                cx.store.set_user_disabled(&username, false, now).await?,
                &username,
            )?;
            println!("enabled {username}");
            Ok(())
        }
        UserCommand::Delete { username } => {
            found(
                cx.store.delete_user(&username, super::now()).await?,
                &username,
            )?;
            println!("deleted {username}");
            Ok(())
        }
    }
}

/// A random UUID that no client uses as its id: user and client ids are one namespace of
/// `sub` values (RFC 9068 §2.2), so a user never shares a `sub` with a client.
async fn new_user_id(cx: &Context) -> Result<String, CliError> {
    loop {
        let id = uuid::Uuid::new_v4().to_string();
        if cx.store.client(&id).await?.is_none() {
            return Ok(id);
        }
    }
}

fn check_username(username: &str) -> Result<(), CliError> {
    if username.is_empty()
        || username.len() > 255
        || username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(CliError::invalid(
            "--username must be 1 to 255 characters without spaces or control characters",
        ));
    }
    Ok(())
}

async fn hash(cx: &Context, password: String) -> Result<String, CliError> {
    password::hash(&cx.settings.password_hash, password)
        .await
        .map_err(|e| CliError::invalid(e.to_string()))
}

fn found(changed: bool, username: &str) -> Result<(), CliError> {
    if changed {
        Ok(())
    } else {
        Err(not_found(username))
    }
}

fn not_found(username: &str) -> CliError {
    CliError::NotFound(format!("no user `{username}`"))
}

async fn find(cx: &Context, username: &str) -> Result<User, CliError> {
    cx.store
        .user_by_username(username)
        .await?
        .ok_or_else(|| not_found(username))
}

/// A user under the OpenID claim names; an unset claim is `null`, and so is an address
/// with no member (the address object has only the members that are set).
fn user_json(user: &User) -> Value {
    let claims = &user.profile;
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": claims.email_verified,
        "name": user.name,
        "given_name": claims.given_name,
        "family_name": claims.family_name,
        "picture": claims.picture,
        "locale": claims.locale,
        "phone_number": claims.phone_number,
        "address": claims.address,
        "disabled": user.disabled,
        "created_at": user.created_at.to_rfc3339(),
        "updated_at": user.updated_at.to_rfc3339(),
    })
}

fn print_user(user: &User, json: bool) {
    if json {
        output::json(&user_json(user));
        return;
    }
    let claims = &user.profile;
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let yes_no = |yes: bool| if yes { "yes" } else { "no" }.to_owned();
    output::fields(&[
        ("id", user.id.clone()),
        ("username", user.username.clone()),
        ("email", or_dash(&user.email)),
        (
            "email verified",
            claims.email_verified.map_or_else(|| "-".into(), yes_no),
        ),
        ("name", or_dash(&user.name)),
        ("given name", or_dash(&claims.given_name)),
        ("family name", or_dash(&claims.family_name)),
        ("picture", or_dash(&claims.picture)),
        ("locale", or_dash(&claims.locale)),
        ("phone", or_dash(&claims.phone_number)),
        ("address", address_line(user)),
        ("disabled", yes_no(user.disabled)),
        ("created", user.created_at.to_rfc3339()),
        ("updated", user.updated_at.to_rfc3339()),
    ]);
}

/// The address on one line: its formatted form if set, else its members.
fn address_line(user: &User) -> String {
    let Some(address) = &user.profile.address else {
        return "-".into();
    };
    let parts: Vec<&str> = match &address.formatted {
        Some(formatted) => vec![formatted],
        None => [
            &address.street_address,
            &address.locality,
            &address.region,
            &address.postal_code,
            &address.country,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect(),
    };
    parts.join(", ").replace('\n', ", ")
}

async fn list(cx: &Context, json: bool) -> Result<(), CliError> {
    let users = cx.store.users().await?;
    if json {
        output::json(&Value::Array(users.iter().map(user_json).collect()));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                u.id.clone(),
                u.email.clone().unwrap_or_else(|| "-".into()),
                if u.disabled {
                    "disabled".into()
                } else {
                    "active".into()
                },
            ]
        })
        .collect();
    output::table(&["USERNAME", "ID", "EMAIL", "STATUS"], &rows);
    Ok(())
}
