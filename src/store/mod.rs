//! All SQL lives here. One set of portable queries runs on SQLite and Postgres: `$1`
//! placeholders, text ids, unix seconds as integers computed in Rust, lower-cased lookup columns.

mod account_changes;
mod activity;
mod audit;
mod canary;
mod change_log;
mod clients;
mod codes;
mod consents;
mod factors;
mod holders;
mod identities;
mod keys;
mod mail_queue;
mod maintenance;
mod outbox;
mod passkeys;
mod refresh_tokens;
mod regions;
mod revoked_tokens;
mod roles;
mod throttle;
mod tokens;
mod user_list;
mod user_sessions;
mod users;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::bus::{Change, Changes};
use crate::config::DatabaseUrl;

pub use activity::{ActivityCount, Totals};
pub use audit::{AuditEvent, AuditFilter};
pub use canary::JobLease;
pub use clients::ClientRow;
pub use codes::AuthCodeRow;
pub use factors::TotpFactor;
pub use identities::Identity;
pub use keys::SigningKeyRow;
pub(crate) use mail_queue::write_mails;
pub use mail_queue::{ClaimedMail, QueuedMail, UnsentMail};
pub use outbox::{Attempt, ClaimedDelivery, DeliveryRow, NATS_TARGET};
pub(crate) use outbox::{execute_with_events, write_events};
pub use passkeys::{PasskeyRow, PasskeyUse};
pub use refresh_tokens::{RefreshTokenRow, TokenFamily};
pub(crate) use regions::read_nearby;
pub use regions::{PrimaryState, Replica};
pub use tokens::{EmailCode, TokenProblem};
pub use user_sessions::UserSession;
pub use users::{NewIdentity, NewUser, User, email_key as users_email_key};
pub use webhooks::WebhookEndpointRow;

/// The database, one of a closed set of backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database and the change generations its writes move (see `bus::Changes`).
#[derive(Clone, Debug)]
pub struct Store {
    /// The primary: every write, and every read that must see the latest state.
    pub db: Db,
    /// The region's streaming replica, where token and session checks read (see `regions`).
    replica: Option<std::sync::Arc<Replica>>,
    primary: std::sync::Arc<regions::PrimaryHealth>,
    changes: Changes,
    /// Woken when this node commits events, so its worker delivers them at once.
    outbox: std::sync::Arc<tokio::sync::Notify>,
    /// Woken when this node queues mail.
    mail: std::sync::Arc<tokio::sync::Notify>,
}

/// Runs the same sqlx expression on whichever pool the store holds.
/// Each run is a `db.query` span (exported when tracing is on, free when it is off); `sync`
/// runs a body that does not await, without a span.
macro_rules! on_pool {
    (sync $store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => {
                tracing::Instrument::instrument(
                    async { $body },
                    $crate::store::query_span("sqlite"),
                )
                .await
            }
            $crate::store::Db::Postgres($pool) => {
                tracing::Instrument::instrument(
                    async { $body },
                    $crate::store::query_span("postgresql"),
                )
                .await
            }
        }
    };
}
pub(crate) use on_pool;

/// The span of one database round trip (OpenTelemetry's `db.system.name`); no statement or
/// values, which may hold personal data.
/// Only under a request or a job's span: the start-up and the periodic key reads would
/// otherwise each be a trace of their own.
pub(crate) fn query_span(system: &'static str) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    tracing::debug_span!(target: crate::ops::telemetry::DB_TARGET, "db.query", db.system.name = system)
}

/// Runs one statement with its binds on whichever pool the store holds; the rows it changed.
macro_rules! execute {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        $crate::store::on_pool!($store, |pool| {
            sqlx::query($sql)
                $(.bind($bind))*
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
    };
}
pub(crate) use execute;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// A unique constraint refused the write (for example a taken email).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

impl StoreError {
    /// The database cannot be reached, or does not take writes now (a primary shutting down,
    /// a standby not yet promoted): worth a 503 and a retry, not a 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(e) if sqlx_unavailable(e))
    }
}

fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (shutting down, cannot
        // connect now), 25006 (read-only transaction: a standby).
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

/// Whether `cause`, or one of its causes, is the database being unavailable.
pub fn unavailable_in(cause: &anyhow::Error) -> bool {
    cause.chain().any(|e| {
        e.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_unavailable)
            || e.downcast_ref::<sqlx::Error>()
                .is_some_and(sqlx_unavailable)
    })
}

pub type StoreResult<T> = Result<T, StoreError>;

impl Store {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            replica: None,
            primary: Default::default(),
            changes: Changes::default(),
            outbox: Default::default(),
            mail: Default::default(),
        }
    }

    /// Moved by this store's writes and by the same writes on other nodes (the change bus);
    /// the token, client and key caches compare them.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// A write that can end an access token or a session.
    fn security_changed(&self) {
        self.changes.publish(Change::Tokens);
    }

    /// A write about `subjects` (ids of people, token families, tokens) that can end an
    /// access token or a session: other nodes drop their cached checks, and this node reads the
    /// subjects from the primary until its replica holds the change.
    async fn security_changed_for(&self, subjects: &[&str]) {
        self.wrote(subjects).await;
        self.security_changed();
    }

    /// Events were committed: the delivery worker looks at once.
    fn outbox_written(&self) {
        self.outbox.notify_one();
    }

    /// Waits until this node commits events.
    pub async fn outbox_wait(&self) {
        self.outbox.notified().await;
    }

    fn mail_queued(&self) {
        self.mail.notify_one();
    }

    /// Waits until this node queues mail.
    pub async fn mail_wait(&self) {
        self.mail.notified().await;
    }

    fn clients_changed(&self) {
        self.changes.publish(Change::Clients);
    }

    fn keys_changed(&self) {
        self.changes.publish(Change::Keys);
    }

    /// Opens the database. SQLite files are created on first use and run in WAL mode with a
    /// busy timeout, so the CLI can write while the server runs.
    pub async fn connect(database: &DatabaseUrl, max_connections: u32) -> StoreResult<Self> {
        match database {
            DatabaseUrl::Sqlite(url) => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .min_connections(1)
                    // No ping before each use: an open file does not drop its connection, and
                    // the ping is one more round trip to the connection's thread per query.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                Ok(Self::new(Db::Sqlite(pool)))
            }
            DatabaseUrl::Postgres(url) => {
                let options = PgConnectOptions::from_str(url.expose())?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    // No ping before each use: from another region a ping is a round trip to
                    // the primary on every query. A connection that broke (a failover) fails its
                    // next query, which answers 503, and is closed.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                Ok(Self::new(Db::Postgres(pool)))
            }
        }
    }

    /// Applies the migrations of this backend (`migrations/sqlite` or `migrations/postgres`).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Checks that the database answers (for `/ready`).
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("select 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Pool connections (in use, idle), for the metrics.
    pub fn pool_connections(&self) -> (u32, u32) {
        on_pool!(sync self, |pool| {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            (pool.size().saturating_sub(idle), idle)
        })
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
        if let Some(replica) = &self.replica {
            replica.pool.close().await;
        }
    }
}
