//! The secret-key canary (`secret_canary`) and the lock that lets one node of a cluster run the
//! periodic jobs.

use super::{Db, Store, StoreResult, on_pool};

/// Held by the node that runs this round of periodic jobs; others skip the round. On Postgres
/// an open transaction holds the advisory lock, so a node that dies lets it go with its
/// connection.
pub enum JobLease {
    Sqlite,
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl JobLease {
    pub async fn release(self) {
        if let Self::Postgres(tx) = self
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %e, "could not release the periodic-job lock");
        }
    }
}

impl Store {
    /// The canary sealed with the key the database was first used with, if one was stored.
    pub async fn secret_canary(&self) -> StoreResult<Option<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>("select sealed from secret_canary where id = 1")
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Stores the canary unless another node stored one first.
    pub async fn insert_secret_canary(&self, sealed: &str, now: i64) -> StoreResult<()> {
        super::execute!(
            self,
            "insert into secret_canary (id, sealed, created_at) values (1, $1, $2) \
             on conflict (id) do nothing",
            sealed,
            now,
        )?;
        Ok(())
    }

    /// The lease on `job` for this round, or `None` when another node holds it.
    pub async fn try_lease_job(&self, job: &str) -> StoreResult<Option<JobLease>> {
        match &self.db {
            Db::Sqlite(_) => Ok(Some(JobLease::Sqlite)),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let leased: bool =
                    sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtext($1))")
                        .bind(format!("portcullis:job:{job}"))
                        .fetch_one(&mut *tx)
                        .await?;
                if leased {
                    Ok(Some(JobLease::Postgres(tx)))
                } else {
                    tx.rollback().await?;
                    Ok(None)
                }
            }
        }
    }
}
