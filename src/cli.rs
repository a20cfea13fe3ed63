//! The `portcullis` command line.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::{App, shutdown_signal};
use crate::clients::{self, NewClient};
use crate::clock::Clock;
use crate::config::Config;
use crate::events::EventType;
use crate::input::Email;
use crate::password::{self, PasswordHasher};
use crate::store::{NewUser, Store};
use crate::tokens::{SigningAlg, keys};

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "A self-hosted identity server: hosted login pages, OAuth 2.0 / OpenID Connect, admin panel.",
    long_about = "A self-hosted identity server: hosted login pages, OAuth 2.0 / OpenID Connect, admin panel.\n\n\
        With no configuration it keeps everything in ./data (an SQLite database and a generated \
        secret key) and listens on http://127.0.0.1:8080. Settings come from defaults, then an \
        optional TOML file, then PORTCULLIS_* environment variables; see the README."
)]
pub struct Cli {
    /// A TOML configuration file (also PORTCULLIS_CONFIG). Environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run migrations, then serve HTTP (the default when no command is given).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage relying apps (OAuth clients). Running servers see changes within 5 seconds.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage webhook endpoints (Standard Webhooks); running servers deliver to them at once.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Add an endpoint; prints {"id": ..., "secret": "whsec_..."} (the secret is shown once).
    Add {
        /// Where events are posted: https://, or http:// for localhost.
        #[arg(long)]
        url: String,
        /// Comma-separated event types, such as user.created,user.deleted (default: all).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// What the endpoint is for, shown in the admin panel.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the endpoints as JSON lines.
    List,
    /// Remove an endpoint and what is queued for it.
    Remove {
        /// The endpoint id.
        id: String,
    },
    /// Give an endpoint a new secret; the old one keeps signing for 24 hours.
    RotateSecret {
        /// The endpoint id.
        id: String,
    },
    /// Post a signed `io.portcullis.webhook.test` event to an endpoint now and print its answer.
    Test {
        /// The endpoint id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register an app; prints {"client_id": ..., "client_secret": ...} (no secret for --public).
    Create(CreateClient),
    /// List the registered apps as JSON lines.
    List,
    /// Remove an app.
    Delete {
        /// The client id.
        id: String,
    },
    /// Give a confidential app a new secret (the old one stops working at once).
    RotateSecret {
        /// The client id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateClient {
    /// The app's name, shown to people on the consent page.
    #[arg(long)]
    pub name: String,
    /// An allowed redirect URI (exact match); repeat for several.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// An allowed URI to return to after sign-out; repeat for several.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (single-page or native app): no secret, PKCE required.
    #[arg(long)]
    pub public: bool,
    /// Comma-separated: authorization_code, refresh_token, client_credentials.
    #[arg(
        long,
        default_value = "authorization_code,refresh_token",
        value_delimiter = ','
    )]
    pub grant_types: Vec<String>,
    /// Space-separated scopes the app may ask for.
    #[arg(long, default_value = "openid email profile offline_access")]
    pub scopes: String,
    /// An API (RFC 8707 resource URI) the app may ask tokens for; repeat for several.
    #[arg(long = "resource", value_name = "URI")]
    pub resources: Vec<String>,
    /// A first-party app: people are not asked for consent.
    #[arg(long)]
    pub skip_consent: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new signing key that starts signing after --delay; older keys stay published until
    /// the tokens they signed have expired.
    Rotate {
        /// How long servers publish the new key before it signs: relying apps that cache the
        /// JWKS need it there first. At least 10s (the time a key takes to reach every node).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        delay: std::time::Duration,
        /// RS256, ES256 or EdDSA (default: the configured signing algorithm).
        #[arg(long)]
        alg: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print {"id": ..., "email": ...} as JSON. Works while the server runs.
    Create(CreateUser),
}

#[derive(Args, Debug)]
pub struct CreateUser {
    /// The user's email address (their sign-in name).
    #[arg(long)]
    pub email: String,
    /// A display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Give the user the admin role.
    #[arg(long)]
    pub admin: bool,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = Store::connect(&config.database, config.database_max_connections).await?;
            store.migrate().await?;
            eprintln!("migrations applied ({})", store.backend_name());
            Ok(())
        }
        Command::User(UserCommand::Create(args)) => create_user(config, args).await,
        Command::Client(command) => client_command(config, command).await,
        Command::Keys(KeysCommand::Rotate { delay, alg }) => rotate_keys(config, delay, alg).await,
        Command::Webhook(command) => crate::events::cli::run(config, command).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let public_url = config.public_url.clone();
    let app = App::start(config, Clock::system()).await?;
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}; set PORTCULLIS_LISTEN to a free address")
    })?;
    app.spawn_housekeeping();
    tracing::info!(
        node = app.state.node.name(),
        database = app.state.store.backend_name(),
        sessions = app.sessions.name(),
        change_bus = app.bus.name,
        mail = %app.state.mailer.describe(),
        "Portcullis is listening on http://{listen} (public URL {public_url})"
    );
    match app.metrics_addr() {
        Some(address) => tracing::info!("metrics on http://{address}/metrics"),
        None => tracing::info!("metrics are off (PORTCULLIS_METRICS_LISTEN=off)"),
    }
    app.serve(listener, shutdown_signal()).await
}

async fn create_user(config: Config, args: CreateUser) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let password = read_password(args.password_stdin)?;
    if let Err(why) = password::check_policy(&password, email.as_str()) {
        bail!("password refused: {why}");
    }
    let store = Store::connect(&config.database, config.database_max_connections).await?;
    store.migrate().await?;
    let hash = PasswordHasher::new(1).hash(password).await?;
    let roles = if args.admin {
        vec!["admin".to_string()]
    } else {
        Vec::new()
    };
    let new_user = NewUser {
        email: email.as_str().to_string(),
        display_name: args
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        password_hash: Some(hash),
        roles,
        email_verified: false,
        identity: None,
        now: Clock::system().now(),
    };
    let events = crate::events::Events::from_config(&config, Clock::system());
    let user = match store
        .create_user(new_user, |user| events.user_created(user, "cli"))
        .await
    {
        Ok(user) => user,
        Err(e) if e.is_unique_violation() => bail!("a user with the email {email} already exists"),
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    println!(
        "{}",
        serde_json::json!({ "id": user.id, "email": user.email })
    );
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input)?;
        let line = input.lines().next().unwrap_or_default().to_string();
        if line.is_empty() {
            bail!("--password-stdin: standard input held no password");
        }
        return Ok(line);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: pass --password-stdin and pipe the password, or run in a terminal"
        );
    }
    let first = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Repeat the password: ")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// The store, with the change bus connected so running servers hear of what the command
/// changes (close it with `close_store`, which sends what is queued).
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database, config.database_max_connections).await?;
    store.migrate().await?;
    let deployment =
        crate::cluster::check_secret_key(&store, &config.secret_key, Clock::system().now()).await?;
    crate::bus::connect(
        &store,
        config.redis_url.as_ref(),
        &deployment,
        crate::bus::Role::Cli,
    )
    .await?;
    Ok(store)
}

pub(crate) async fn close_store(store: Store) {
    store.changes().flush().await;
    store.close().await;
}

async fn client_command(config: Config, command: ClientCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let now = Clock::system().now();
    let events = crate::events::Events::from_config(&config, Clock::system());
    match command {
        ClientCommand::Create(args) => {
            let new = NewClient {
                name: args.name,
                redirect_uris: args.redirect_uris,
                post_logout_redirect_uris: args.post_logout_redirect_uris,
                public: args.public,
                grant_types: args
                    .grant_types
                    .iter()
                    .map(|g| g.trim().to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
                scopes: args.scopes.split_whitespace().map(str::to_string).collect(),
                resources: args.resources,
                skip_consent: args.skip_consent,
            };
            new.validate().map_err(|e| anyhow::anyhow!(e))?;
            let (client, secret) =
                clients::create(&store, &events, &config.secret_key, new, now).await?;
            cli_audit(
                &store,
                now,
                "cli.client_created",
                &format!("client {}", client.id),
            )
            .await?;
            let mut out = serde_json::json!({ "client_id": client.id });
            if let Some(secret) = secret {
                out["client_secret"] = serde_json::json!(secret);
            }
            println!("{out}");
        }
        ClientCommand::List => {
            for row in store.list_clients().await? {
                let client = clients::Client::from(row);
                println!(
                    "{}",
                    serde_json::json!({
                        "client_id": client.id,
                        "name": client.name,
                        "public": client.is_public(),
                        "redirect_uris": client.redirect_uris,
                        "post_logout_redirect_uris": client.post_logout_redirect_uris,
                        "grant_types": client.grant_types,
                        "scopes": client.scopes,
                        "resources": client.resources,
                        "skip_consent": client.skip_consent,
                    })
                );
            }
        }
        ClientCommand::Delete { id } => {
            let event = events.for_client(EventType::ClientDeleted, &id, serde_json::json!({}));
            if !store.delete_client(&id, now, event).await? {
                bail!("no client with the id {id}");
            }
            cli_audit(&store, now, "cli.client_deleted", &format!("client {}", id)).await?;
            eprintln!("client {id} deleted");
        }
        ClientCommand::RotateSecret { id } => {
            match clients::rotate_secret(&store, &events, &config.secret_key, &id, now).await? {
                Some(secret) => {
                    cli_audit(
                        &store,
                        now,
                        "cli.client_secret_rotated",
                        &format!("client {}", id),
                    )
                    .await?;
                    println!(
                        "{}",
                        serde_json::json!({ "client_id": id, "client_secret": secret })
                    )
                }
                None => {
                    bail!("no confidential client with the id {id} (public clients have no secret)")
                }
            }
        }
    }
    close_store(store).await;
    Ok(())
}

/// Changes made on the command line go to the audit log too, with no actor.
pub(crate) async fn cli_audit(
    store: &Store,
    now: i64,
    event: &str,
    detail: &str,
) -> anyhow::Result<()> {
    store
        .insert_audit_event(&crate::store::AuditEvent {
            id: 0,
            happened_at: now,
            event: event.to_string(),
            actor_id: None,
            subject_id: None,
            detail: Some(detail.to_string()),
            ip: None,
            user_agent: Some("portcullis CLI".into()),
        })
        .await?;
    Ok(())
}

async fn rotate_keys(
    config: Config,
    delay: std::time::Duration,
    alg: Option<String>,
) -> anyhow::Result<()> {
    let alg = match alg {
        Some(name) => SigningAlg::parse(&name)
            .ok_or_else(|| anyhow::anyhow!("--alg must be RS256, ES256 or EdDSA"))?,
        None => config.signing_alg,
    };
    if delay < keys::MIN_ROTATION_DELAY {
        bail!(
            "--delay must be at least {}: every running node must publish the new key before \
             any signs with it",
            humantime::format_duration(keys::MIN_ROTATION_DELAY)
        );
    }
    let store = open_store(&config).await?;
    let now = Clock::system().now();
    let activates_at = now + delay.as_secs() as i64;
    let events = crate::events::Events::from_config(&config, Clock::system());
    let kid = keys::create_key(&store, &events, &config.secret_key, alg, now, activates_at).await?;
    close_store(store).await;
    println!(
        "{}",
        serde_json::json!({ "kid": kid, "alg": alg.name(), "activates_at": activates_at })
    );
    Ok(())
}
