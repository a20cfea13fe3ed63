//! The outbox: events written in the transaction of their change, one delivery row per sink,
//! and the claims the delivery workers make on them.

use sqlx::FromRow;

use super::{Db, Store, StoreError, StoreResult, execute, on_pool};
use crate::events::NewEvent;

/// Writes `events` and their deliveries inside the open transaction `$tx` (a
/// `sqlx::Transaction` of either backend): the event commits with its change or not at all.
/// Webhook deliveries go to every endpoint subscribed to the type (or to all types).
macro_rules! write_events {
    ($tx:expr, $events:expr) => {
        for event in $events {
            let seq: i64 = sqlx::query_scalar(
                "insert into events (id, type, subject, time, document) \
                 values ($1, $2, $3, $4, $5) returning seq",
            )
            .bind(&event.id)
            .bind(event.kind.name())
            .bind(&event.subject)
            .bind(event.time)
            .bind(&event.document)
            .fetch_one(&mut *$tx)
            .await?;
            sqlx::query(
                "insert into deliveries (event_seq, target, subject, next_attempt_at, created_at) \
                 select $1, id, $2, $3, $3 from webhook_endpoints \
                 where events = '' or events like $4",
            )
            .bind(seq)
            .bind(&event.subject)
            .bind(event.time)
            .bind(format!("% {} %", event.kind.name()))
            .execute(&mut *$tx)
            .await?;
            if event.to_nats {
                sqlx::query(
                    "insert into deliveries (event_seq, target, subject, next_attempt_at, \
                     created_at) values ($1, 'nats', $2, $3, $3)",
                )
                .bind(seq)
                .bind(&event.subject)
                .bind(event.time)
                .execute(&mut *$tx)
                .await?;
            }
        }
    };
}
pub(crate) use write_events;

/// Runs one statement and, when it changed a row, writes `$events` in the same transaction;
/// the rows it changed.
macro_rules! execute_with_events {
    ($store:expr, $events:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let events: &[$crate::events::NewEvent] = $events;
        let changed = $crate::store::on_pool!($store, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query($sql)
                $(.bind($bind))*
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed > 0 {
                $crate::store::write_events!(tx, events);
            }
            tx.commit().await?;
            Ok::<_, $crate::store::StoreError>(changed)
        })?;
        if changed > 0 && !events.is_empty() {
            $store.outbox_written();
        }
        changed
    }};
}
pub(crate) use execute_with_events;

/// The NATS sink's target name in `deliveries`.
pub const NATS_TARGET: &str = "nats";

/// A delivery a worker holds the lease of, with what it needs to deliver it.
#[derive(Clone, Debug, FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub target: String,
    pub attempts: i64,
    pub created_at: i64,
    pub event_id: String,
    pub event_type: String,
    pub document: String,
    /// The endpoint's URL and sealed secrets (webhooks only).
    pub url: Option<String>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
}

/// One delivery as the admin panel lists it.
#[derive(Clone, Debug, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub subject: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// How a delivery attempt ended.
#[derive(Debug)]
pub enum Attempt<'a> {
    Delivered {
        status: Option<i64>,
    },
    /// Try again at `retry_at`, or give up (`retry_at` is `None`).
    Failed {
        status: Option<i64>,
        error: &'a str,
        retry_at: Option<i64>,
    },
}

impl Store {
    /// Events that are not a side of any other write (a failed sign-in, say), in their own
    /// transaction.
    pub async fn write_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            write_events!(tx, events);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        self.outbox_written();
        Ok(())
    }

    /// Leases up to `limit` due deliveries until `leased_until`: for each target and subject
    /// only the oldest pending one, so a subject's events arrive in order. On Postgres the
    /// candidates are locked with `FOR UPDATE SKIP LOCKED`, so the workers of several nodes
    /// never claim the same row; SQLite has the single process.
    /// The lease is named after the node (`node/uuid`), so the node restarted after a crash
    /// takes its own claims back at once (`release_delivery_leases`).
    pub async fn claim_deliveries(
        &self,
        node: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        const CANDIDATES: &str = "select d.id from deliveries d \
             where d.state = 'pending' and d.next_attempt_at <= $1 and d.leased_until <= $1 \
             and not exists (select 1 from deliveries p where p.target = d.target \
             and p.subject = d.subject and p.state = 'pending' and p.event_seq < d.event_seq) \
             order by d.event_seq limit $2";
        let lease = format!("{node}/{}", uuid::Uuid::now_v7());
        let claim = |skip_locked: &str| {
            format!(
                "update deliveries set leased_until = $3, lease = $4 \
                 where id in ({CANDIDATES}{skip_locked})"
            )
        };
        let claimed = match &self.db {
            Db::Sqlite(_) => claim(""),
            Db::Postgres(_) => claim(" for update skip locked"),
        };
        execute!(self, &claimed, now, limit, leased_until, &lease)?;
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, ClaimedDelivery>(
                "select d.id, d.target, d.attempts, d.created_at, e.id as event_id, \
                 e.type as event_type, e.document, w.url, w.secret, w.previous_secret, \
                 w.previous_secret_until from deliveries d \
                 join events e on e.seq = d.event_seq \
                 left join webhook_endpoints w on w.id = d.target \
                 where d.lease = $1 order by d.event_seq",
            )
            .bind(&lease)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Records how an attempt ended and gives the lease back.
    pub async fn finish_attempt(
        &self,
        delivery_id: i64,
        attempt: Attempt<'_>,
        now: i64,
    ) -> StoreResult<()> {
        match attempt {
            Attempt::Delivered { status } => execute!(
                self,
                "update deliveries set state = 'delivered', attempts = attempts + 1, \
                 last_status = $1, last_error = null, finished_at = $2, leased_until = 0, \
                 lease = null where id = $3",
                status,
                now,
                delivery_id,
            )?,
            Attempt::Failed {
                status,
                error,
                retry_at: Some(at),
            } => execute!(
                self,
                "update deliveries set attempts = attempts + 1, last_status = $1, \
                 last_error = $2, next_attempt_at = $3, leased_until = 0, lease = null \
                 where id = $4",
                status,
                error,
                at,
                delivery_id,
            )?,
            Attempt::Failed {
                status,
                error,
                retry_at: None,
            } => execute!(
                self,
                "update deliveries set state = 'failed', attempts = attempts + 1, \
                 last_status = $1, last_error = $2, finished_at = $3, leased_until = 0, \
                 lease = null where id = $4",
                status,
                error,
                now,
                delivery_id,
            )?,
        };
        Ok(())
    }

    /// Gives back the leases this node held before it started (it was killed mid-delivery):
    /// those events go out again now rather than when the leases run out.
    pub async fn release_delivery_leases(&self, node: &str) -> StoreResult<u64> {
        let prefix = format!("{node}/");
        Ok(execute!(
            self,
            "update deliveries set leased_until = 0, lease = null \
             where lease is not null and substr(lease, 1, length($1)) = $1",
            &prefix,
        )?)
    }

    /// The newest deliveries to a target, for the admin panel.
    pub async fn recent_deliveries(
        &self,
        target: &str,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, DeliveryRow>(
                "select d.id, e.id as event_id, e.type as event_type, d.subject, d.state, \
                 d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, \
                 d.finished_at from deliveries d join events e on e.seq = d.event_seq \
                 where d.target = $1 order by d.id desc limit $2",
            )
            .bind(target)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Puts a failed (or waiting) delivery back in the queue to be tried at once; its age
    /// starts again. False when there is no such delivery to that target.
    pub async fn retry_delivery(
        &self,
        target: &str,
        delivery_id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let changed = execute!(
            self,
            "update deliveries set state = 'pending', next_attempt_at = $1, created_at = $1, \
             finished_at = null where id = $2 and target = $3 and state <> 'delivered'",
            now,
            delivery_id,
            target,
        )?;
        if changed > 0 {
            self.outbox_written();
        }
        Ok(changed > 0)
    }

    /// Events of a type, oldest first (tests and the CLI's checks).
    pub async fn events_of_type(&self, kind: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(
                "select id, document from events where type = $1 order by seq",
            )
            .bind(kind)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Forgets delivered and failed deliveries finished before `before`, and events older than
    /// `before` that nothing waits on; how many events went.
    pub async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        execute!(
            self,
            "delete from deliveries where state <> 'pending' and finished_at < $1",
            before,
        )?;
        Ok(execute!(
            self,
            "delete from events where time < $1 \
             and not exists (select 1 from deliveries d where d.event_seq = events.seq)",
            before,
        )?)
    }
}
