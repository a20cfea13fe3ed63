//! Where browser sessions live: the database by default, Redis when `PORTCULLIS_REDIS_URL` is
//! set (so several nodes behind a load balancer share them). A closed set, so an enum.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config as RedisConfig, Pool};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::config::Secret;
use crate::store::{Db, Store};

#[derive(Clone, Debug)]
pub enum SessionBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore<Pool>),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionSetupError {
    #[error("cannot prepare the session table: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot connect to Redis at PORTCULLIS_REDIS_URL: {0}")]
    Redis(String),
}

impl SessionBackend {
    /// Picks Redis when configured, else the SQL store of the main database.
    pub async fn connect(
        store: &Store,
        redis_url: Option<&Secret>,
    ) -> Result<Self, SessionSetupError> {
        if let Some(url) = redis_url {
            let config = RedisConfig::from_url(url.expose())
                .map_err(|e| SessionSetupError::Redis(e.to_string()))?;
            let pool = Pool::new(config, None, None, None, 4)
                .map_err(|e| SessionSetupError::Redis(e.to_string()))?;
            pool.init()
                .await
                .map_err(|e| SessionSetupError::Redis(e.to_string()))?;
            return Ok(Self::Redis(RedisStore::new(pool)));
        }
        match &store.db {
            Db::Sqlite(pool) => {
                let sessions = SqliteStore::new(pool.clone());
                sessions.migrate().await?;
                Ok(Self::Sqlite(sessions))
            }
            Db::Postgres(pool) => {
                let sessions = PostgresStore::new(pool.clone());
                sessions.migrate().await?;
                Ok(Self::Postgres(sessions))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Redis(_) => "redis",
        }
    }

    /// SQL stores keep expired rows until deleted; Redis expires keys by itself.
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_expired().await,
            Self::Postgres(store) => store.delete_expired().await,
            Self::Redis(_) => Ok(()),
        }
    }
}

/// Forwards every call to the chosen backend.
macro_rules! on_backend {
    ($self:expr, |$store:ident| $body:expr) => {
        match $self {
            SessionBackend::Sqlite($store) => $body,
            SessionBackend::Postgres($store) => $body,
            SessionBackend::Redis($store) => $body,
        }
    };
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        on_backend!(self, |store| store.create(record).await)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        on_backend!(self, |store| store.save(record).await)
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        on_backend!(self, |store| store.load(session_id).await)
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        on_backend!(self, |store| store.delete(session_id).await)
    }
}

/// The backend as the session layer uses it: failures are counted in the metrics.
#[derive(Clone, Debug)]
pub struct ObservedSessions {
    backend: SessionBackend,
    metrics: crate::ops::metrics::Metrics,
}

impl ObservedSessions {
    pub fn new(backend: SessionBackend, metrics: crate::ops::metrics::Metrics) -> Self {
        Self { backend, metrics }
    }

    fn counted<T>(&self, result: session_store::Result<T>) -> session_store::Result<T> {
        if result.is_err() {
            self.metrics.session_store_error();
        }
        result
    }
}

#[async_trait]
impl SessionStore for ObservedSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let result = self.backend.create(record).await;
        self.counted(result)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let result = self.backend.save(record).await;
        self.counted(result)
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let result = self.backend.load(session_id).await;
        self.counted(result)
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let result = self.backend.delete(session_id).await;
        self.counted(result)
    }
}
