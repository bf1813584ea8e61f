//! The command line (SPEC §2): one clap definition, a file per noun, one error type that
//! `main` turns into a one-line message and exit code 1.

mod api;
mod claims;
mod client;
mod docs;
mod health;
mod keys;
mod output;
mod registration;
mod user;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, App, StartError};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, FlagOverrides, Settings};
use crate::crypto::{SecretError, ServerKeys};
use crate::domain::UnixTime;
use crate::janitor;
use crate::secret;
use crate::store::{self, SharedStore, StoreError};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "valet",
    version,
    about = "Valet: an OAuth 2.0 authorization server with OpenID Connect",
    long_about = "Valet: an OAuth 2.0 authorization server with OpenID Connect.\n\n\
        Run the server with `valet serve`; manage APIs, clients, users and signing keys with the \
        other commands. Every command reads the same configuration: config/valet.toml (or --config), \
        then VALET_* environment variables, then flags.",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: config/valet.toml if present; env: VALET_CONFIG]
    #[arg(long = "config", id = "config", global = true, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Store URL: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [env: VALET_DATABASE_URL, DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies pending migrations first)
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080 [env: VALET_LISTEN]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Issuer URL: the `iss` of tokens and the base of every endpoint [env: VALET_ISSUER]
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
    },
    /// Apply pending migrations and exit
    Migrate,
    /// Print the effective configuration (the secret hidden) and exit
    Config,
    /// Manage clients: the applications that request tokens
    #[command(subcommand)]
    Client(Box<client::ClientCommand>),
    /// Manage users: the people who log in
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage APIs: the resource servers that tokens are for, and their scopes
    #[command(subcommand)]
    Api(api::ApiCommand),
    /// Manage signing keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Dynamic client registration: initial access tokens (RFC 7591)
    #[command(subcommand)]
    Registration(registration::RegistrationCommand),
    /// Delete expired codes, sessions, tokens and other rows now (`serve` does it periodically)
    Janitor {
        /// Run once and exit (the only mode; required so that the intent is explicit)
        #[arg(long)]
        once: bool,
    },
    /// Probe a running server (for container HEALTHCHECKs: the image has no curl); exit 0 if
    /// it answers 200
    Health {
        /// The URL to GET (plain http)
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:8080/readyz"
        )]
        url: String,
    },
    /// Print a shell completion script, e.g. `valet completions bash > /etc/bash_completion.d/valet`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (valet.1 and one per command) into a directory
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

/// A failed command: printed on one line, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// Settings, store and (on demand) the server keys, for commands that manage data.
pub struct Context {
    pub settings: Settings,
    pub store: SharedStore,
}

impl Context {
    /// Connect and migrate, so that every command works on a fresh database.
    async fn open(settings: Settings) -> Result<Self, CliError> {
        let store = store::connect(&settings).await?;
        store.migrate().await?;
        Ok(Self { settings, store })
    }

    /// The keys derived from `secret`; only commands that hash secrets or seal keys need them.
    fn server_keys(&self) -> Result<ServerKeys, CliError> {
        let (keys, _) = secret::load(&self.settings)?;
        Ok(keys)
    }
}

/// Commands read the system clock once each and pass the time down.
fn now() -> UnixTime {
    Clock::system().now()
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    // Generated from the clap definitions; they need no configuration, so a broken config
    // cannot stop them.
    match &cli.command {
        Command::Completions { shell } => return docs::completions(*shell),
        Command::Man { out_dir } => return docs::man_pages(out_dir),
        Command::Health { url } => return health::probe(url),
        _ => {}
    }
    let (listen, issuer) = match &cli.command {
        Command::Serve { listen, issuer } => (listen.clone(), issuer.clone()),
        _ => (None, None),
    };
    let flags = FlagOverrides {
        database_url: cli.database_url.clone(),
        listen,
        issuer,
    };
    let config = Config::load(cli.config_file.as_deref(), &flags)?;
    let settings = config.validate()?;
    telemetry::init(settings.log_format);
    match cli.command {
        Command::Serve { .. } => {
            let shutdown = app::shutdown_signal();
            let app = App::build(settings).await?;
            app.run(shutdown).await?;
            Ok(())
        }
        Command::Migrate => {
            Context::open(settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Config => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Client(cmd) => client::run(&Context::open(settings).await?, *cmd).await,
        Command::User(cmd) => user::run(&Context::open(settings).await?, cmd).await,
        Command::Api(cmd) => api::run(&Context::open(settings).await?, cmd).await,
        Command::Keys(cmd) => keys::run(&Context::open(settings).await?, cmd).await,
        Command::Registration(cmd) => registration::run(&Context::open(settings).await?, cmd).await,
        Command::Janitor { once } => {
            if !once {
                return Err(CliError::invalid(
                    "`valet janitor` runs inside `valet serve`; use `valet janitor --once` to run it now",
                ));
            }
            let cx = Context::open(settings).await?;
            let report = janitor::run_once(&cx.store, &cx.settings, now()).await?;
            for (purge, deleted) in report {
                println!("{:<22} {deleted}", purge.table());
            }
            Ok(())
        }
        Command::Completions { .. } | Command::Man { .. } | Command::Health { .. } => Ok(()),
    }
}
