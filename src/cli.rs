//! The `portcullis` command line.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::{App, shutdown_signal};
use crate::clock::Clock;
use crate::config::Config;
use crate::input::Email;
use crate::password::{self, PasswordHasher};
use crate::store::{NewUser, Store};

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
            let store = Store::connect(&config.database).await?;
            store.migrate().await?;
            eprintln!("migrations applied ({})", store.backend_name());
            Ok(())
        }
        Command::User(UserCommand::Create(args)) => create_user(config, args).await,
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
        database = app.state.store.backend_name(),
        sessions = app.sessions.name(),
        mail = %app.state.mailer.describe(),
        "Portcullis is listening on http://{listen} (public URL {public_url})"
    );
    app.serve(listener, shutdown_signal()).await
}

async fn create_user(config: Config, args: CreateUser) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let password = read_password(args.password_stdin)?;
    if let Err(why) = password::check_policy(&password, email.as_str()) {
        bail!("password refused: {why}");
    }
    let store = Store::connect(&config.database).await?;
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
        now: Clock::system().now(),
    };
    let user = match store.create_user(new_user).await {
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
