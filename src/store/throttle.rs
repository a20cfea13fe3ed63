//! Counters for throttling, kept in the database so they hold across restarts and nodes.

use super::{Store, StoreResult, on_pool};

impl Store {
    /// Records one event under a throttle key (`login:email:…`, `login:ip:…`).
    pub async fn record_throttle_event(&self, key: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("insert into throttle_events (throttle_key, happened_at) values ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Events under `key` after `since`: how many, and when the oldest of them happened.
    pub async fn throttle_events_since(
        &self,
        key: &str,
        since: i64,
    ) -> StoreResult<(i64, Option<i64>)> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, (i64, Option<i64>)>(
                "select count(*), min(happened_at) from throttle_events \
                 where throttle_key = $1 and happened_at > $2",
            )
            .bind(key)
            .bind(since)
            .fetch_one(pool)
            .await
        })?;
        Ok(row)
    }

    /// Forgets the events under `key` (after a successful sign-in to that account).
    pub async fn clear_throttle_events(&self, key: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("delete from throttle_events where throttle_key = $1")
                .bind(key)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Drops events older than `before`; run periodically.
    pub async fn prune_throttle_events(&self, before: i64) -> StoreResult<u64> {
        let done = on_pool!(self, |pool| {
            sqlx::query("delete from throttle_events where happened_at <= $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }
}
