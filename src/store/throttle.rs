//! Counters for throttling, kept in the database so they hold across restarts and nodes.

use super::{Store, StoreResult, execute, on_pool};

/// Counts an attempt while the key is under its limit, in one statement: a new key or an
/// expired window starts a window of one; an open window under `$4` counts one more; a full
/// window is left alone and returns no row. On Postgres the conflicting row is locked and the
/// `where` re-checked against its latest version, so parallel statements queue and each sees
/// the others' counts; SQLite runs writes one at a time.
const TAKE_ATTEMPT: &str = "insert into throttle_counters (throttle_key, window_start, attempts) \
     values ($1, $2, 1) \
     on conflict (throttle_key) do update set \
     window_start = case when throttle_counters.window_start <= $3 \
         then excluded.window_start else throttle_counters.window_start end, \
     attempts = case when throttle_counters.window_start <= $3 \
         then 1 else throttle_counters.attempts + 1 end \
     where throttle_counters.window_start <= $3 or throttle_counters.attempts < $4 \
     returning attempts";

impl Store {
    /// Counts one attempt under `key` at `now` unless `max` attempts are already counted in a
    /// window that began after `window_from`; `false` when refused.
    pub async fn take_throttle_attempt(
        &self,
        key: &str,
        now: i64,
        window_from: i64,
        max: i64,
    ) -> StoreResult<bool> {
        let row = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(TAKE_ATTEMPT)
                .bind(key)
                .bind(now)
                .bind(window_from)
                .bind(max)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.is_some())
    }

    /// The window of `key`: when it began and how many attempts it holds.
    pub async fn throttle_window(&self, key: &str) -> StoreResult<Option<(i64, i64)>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, (i64, i64)>(
                "select window_start, attempts from throttle_counters where throttle_key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Gives one attempt back under `key`.
    pub async fn release_throttle_attempt(&self, key: &str) -> StoreResult<()> {
        execute!(
            self,
            "update throttle_counters set attempts = attempts - 1 \
                 where throttle_key = $1 and attempts > 0",
            key,
        )?;
        Ok(())
    }

    /// Forgets the attempts under `forget` and gives one back under `give_back`, in one
    /// statement (a right password: the account starts over, the address is not held to it).
    /// The forgotten key keeps its row, at no attempts, until its window is pruned.
    pub async fn forget_and_give_back(&self, forget: &str, give_back: &str) -> StoreResult<()> {
        execute!(
            self,
            "update throttle_counters \
                 set attempts = case when throttle_key = $1 then 0 else attempts - 1 end \
                 where throttle_key = $1 or (throttle_key = $2 and attempts > 0)",
            forget,
            give_back,
        )?;
        Ok(())
    }

    /// Forgets the attempts under `key`.
    pub async fn clear_throttle(&self, key: &str) -> StoreResult<()> {
        execute!(
            self,
            "delete from throttle_counters where throttle_key = $1",
            key,
        )?;
        Ok(())
    }

    /// Drops windows that began at or before `before`; run periodically.
    pub async fn prune_throttle_events(&self, before: i64) -> StoreResult<u64> {
        let done = execute!(
            self,
            "delete from throttle_counters where window_start <= $1",
            before,
        )?;
        Ok(done)
    }
}
