//! Several regions on one Postgres primary: each region's nodes read token and session checks
//! from the region's streaming replica, and write to the primary.
//!
//! A replica is behind the primary by its replication lag, so two rules keep its answers right:
//! - *read-your-writes*: after this node changes a person, a client or a token, it reads that
//!   subject from the primary until the replica has replayed past the primary's WAL position
//!   taken after the change (`pg_current_wal_lsn()` then `pg_last_wal_replay_lsn()`);
//! - *absence is asked again*: a row the replica does not have yet (a person who just signed
//!   up, a session just registered, a client just created) is looked up on the primary.
//!
//! Other regions' changes reach this node's caches through the change log (`bus::log`), which
//! is read from the replica, so a cache is dropped only once the replica holds the change.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Db, Store, StoreError, StoreResult, on_pool};

/// A subject changed here is read from the primary at most this long, whatever the replica
/// says: a replica stuck further behind is an outage the operator is alerted to.
const LONGEST_PRIMARY_READ: Duration = Duration::from_secs(60);
const MAX_SUBJECTS: usize = 100_000;

/// The region's replica and what this node changed that it may not hold yet.
#[derive(Debug)]
pub struct Replica {
    pub(super) pool: PgPool,
    /// Subject → (the primary's WAL position after the change, when).
    written: Mutex<HashMap<String, (u64, Instant)>>,
    /// The highest replay position the replica has reported.
    replayed: AtomicU64,
}

/// What this node last found when it asked the primary (`Store::check_primary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrimaryState {
    /// It takes writes.
    Writable,
    /// It answers but is a standby (not yet promoted, or demoted): reads only.
    ReadOnly,
    /// It did not answer.
    Unreachable,
}

impl PrimaryState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Writable => "writable",
            Self::ReadOnly => "read-only",
            Self::Unreachable => "unreachable",
        }
    }
}

/// The primary's last known state, shared by the store's clones.
#[derive(Debug)]
pub(super) struct PrimaryHealth(AtomicU8);

impl Default for PrimaryHealth {
    fn default() -> Self {
        Self(AtomicU8::new(0))
    }
}

impl PrimaryHealth {
    fn get(&self) -> PrimaryState {
        match self.0.load(Ordering::Acquire) {
            0 => PrimaryState::Writable,
            1 => PrimaryState::ReadOnly,
            _ => PrimaryState::Unreachable,
        }
    }

    fn set(&self, state: PrimaryState) {
        let value = match state {
            PrimaryState::Writable => 0,
            PrimaryState::ReadOnly => 1,
            PrimaryState::Unreachable => 2,
        };
        self.0.store(value, Ordering::Release);
    }
}

/// A WAL position (`pg_lsn` as text, `16/B374D848`) as a number; `None` for anything else.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    Some((high << 32) | low)
}

/// How long a query on the replica may wait for a connection before the primary is asked.
const REPLICA_ACQUIRE: Duration = Duration::from_secs(1);

impl Store {
    /// Adds the region's streaming replica: token and session checks read there. Connected
    /// on first use, so a node starts while its replica is down (reads go to the primary).
    pub fn with_replica(mut self, url: &str, max_connections: u32) -> StoreResult<Self> {
        if !matches!(self.db, Db::Postgres(_)) {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "a replica needs a Postgres primary".into(),
            )));
        }
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(REPLICA_ACQUIRE)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        self.replica = Some(Arc::new(Replica {
            pool,
            written: Mutex::new(HashMap::new()),
            replayed: AtomicU64::new(0),
        }));
        Ok(self)
    }

    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The replica's pool for a read about `subjects`, unless this node changed one of them
    /// and the replica has not replayed that change yet.
    pub(super) async fn replica_for(&self, subjects: &[&str]) -> Option<&PgPool> {
        let replica = self.replica.as_deref()?;
        let needed = {
            let written = replica.written.lock().ok()?;
            subjects
                .iter()
                .filter_map(|s| written.get(*s))
                .filter(|(_, at)| at.elapsed() < LONGEST_PRIMARY_READ)
                .map(|(lsn, _)| *lsn)
                .max()
        };
        let Some(needed) = needed else {
            return Some(&replica.pool);
        };
        if replica.replayed.load(Ordering::Acquire) >= needed {
            return Some(&replica.pool);
        }
        // NULL: the replica was promoted and is the primary now.
        let replayed: Option<String> = sqlx::query_scalar("select pg_last_wal_replay_lsn()::text")
            .fetch_one(&replica.pool)
            .await
            .ok()?;
        let replayed = replayed.as_deref().map_or(Some(u64::MAX), parse_lsn)?;
        replica.replayed.fetch_max(replayed, Ordering::AcqRel);
        (replayed >= needed).then_some(&replica.pool)
    }

    /// Records that this node changed `subjects` (person, client, token ids): until the replica
    /// has replayed the change, reads about them go to the primary. Nothing without a replica.
    pub(super) async fn wrote(&self, subjects: &[&str]) {
        let Some(replica) = self.replica.as_deref() else {
            return;
        };
        let position = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>("select pg_current_wal_lsn()::text")
                .fetch_one(pool)
                .await
        });
        // Unknown: the primary until the longest wait has passed.
        let position = position
            .ok()
            .as_deref()
            .and_then(parse_lsn)
            .unwrap_or(u64::MAX);
        if let Ok(mut written) = replica.written.lock() {
            if written.len() >= MAX_SUBJECTS {
                written.retain(|_, (_, at)| at.elapsed() < LONGEST_PRIMARY_READ);
            }
            let now = Instant::now();
            for subject in subjects {
                written.insert((*subject).to_string(), (position, now));
            }
        }
    }

    /// Asks the primary whether it takes writes, within `timeout`.
    pub async fn check_primary(&self, timeout: Duration) -> PrimaryState {
        let asked = tokio::time::timeout(timeout, async {
            match &self.db {
                Db::Postgres(pool) => {
                    sqlx::query_scalar::<_, bool>("select pg_is_in_recovery()")
                        .fetch_one(pool)
                        .await
                }
                Db::Sqlite(pool) => {
                    sqlx::query_scalar::<_, bool>("select false")
                        .fetch_one(pool)
                        .await
                }
            }
        })
        .await;
        match asked {
            Ok(Ok(false)) => PrimaryState::Writable,
            Ok(Ok(true)) => PrimaryState::ReadOnly,
            Ok(Err(_)) | Err(_) => PrimaryState::Unreachable,
        }
    }

    /// The primary's state as the watcher (`ops::primary`) last found it; writable until it
    /// finds otherwise.
    pub fn primary_state(&self) -> PrimaryState {
        self.primary.get()
    }

    pub fn set_primary_state(&self, state: PrimaryState) {
        self.primary.set(state);
    }

    /// Whether the replica answers, within `timeout`; `None` without one.
    pub async fn check_replica(&self, timeout: Duration) -> Option<bool> {
        let replica = self.replica.as_deref()?;
        let asked =
            tokio::time::timeout(timeout, sqlx::query("select 1").execute(&replica.pool)).await;
        Some(matches!(asked, Ok(Ok(_))))
    }
}

/// Runs a read about `$subjects` on the region's replica when it can answer for them, else on
/// the primary: also when the replica failed, or when `$settled` says its answer may only be
/// missing what the replica has not replayed yet (unless the primary is lost: then the
/// replica's answer stands).
macro_rules! read_nearby {
    ($store:expr, $subjects:expr, $settled:expr, |$pool:ident| $body:expr) => {{
        let nearby = match $store.replica_for($subjects).await {
            Some($pool) => {
                let found = tracing::Instrument::instrument(
                    async { $body },
                    $crate::store::query_span("postgresql"),
                )
                .await;
                match found {
                    // Without the primary, the replica's answer is the best there is.
                    Ok(found)
                        if ($settled)(&found)
                            || $store.primary_state() != $crate::store::PrimaryState::Writable =>
                    {
                        Some(found)
                    }
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "the replica failed a read; asking the primary");
                        None
                    }
                }
            }
            None => None,
        };
        match nearby {
            Some(found) => Ok(found),
            None => $crate::store::on_pool!($store, |$pool| $body),
        }
    }};
}
pub(crate) use read_nearby;

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn wal_positions_compare_as_numbers() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert!(parse_lsn("1/FFFFFFFF") < parse_lsn("2/0"));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
