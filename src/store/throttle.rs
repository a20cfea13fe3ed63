use super::{Store, StoreResult, on_pool};

impl Store {
    /// Records one failed sign-in under a throttle key (`email:…` or `ip:…`).
    pub async fn record_login_failure(&self, key: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("insert into login_failures (throttle_key, failed_at) values ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Failures under `key` since `since`: how many, and when the oldest of them happened.
    pub async fn login_failures_since(
        &self,
        key: &str,
        since: i64,
    ) -> StoreResult<(i64, Option<i64>)> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, (i64, Option<i64>)>(
                "select count(*), min(failed_at) from login_failures \
                 where throttle_key = $1 and failed_at > $2",
            )
            .bind(key)
            .bind(since)
            .fetch_one(pool)
            .await
        })?;
        Ok(row)
    }

    /// Forgets the failures under `key` (after a successful sign-in to that account).
    pub async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("delete from login_failures where throttle_key = $1")
                .bind(key)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Drops failures older than `before`; run periodically.
    pub async fn prune_login_failures(&self, before: i64) -> StoreResult<u64> {
        let done = on_pool!(self, |pool| {
            sqlx::query("delete from login_failures where failed_at <= $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }
}
