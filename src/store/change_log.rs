//! `change_log`: the changes that drop caches, for nodes in other regions (see `bus::log`).

use super::{Store, StoreResult, execute, read_nearby};

impl Store {
    pub async fn record_change(&self, origin: &str, kind: &str, at: i64) -> StoreResult<()> {
        execute!(
            self,
            "insert into change_log (origin, kind, at) values ($1, $2, $3)",
            origin,
            kind,
            at,
        )?;
        Ok(())
    }

    /// Changes after `seq`, oldest first, read on the region's replica: a change is seen
    /// there only once the replica holds what it describes.
    pub async fn changes_after(
        &self,
        seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String, String)>> {
        Ok(read_nearby!(self, &[], |_: &Vec<_>| true, |pool| {
            sqlx::query_as::<_, (i64, String, String)>(
                "select seq, origin, kind from change_log where seq > $1 order by seq limit $2",
            )
            .bind(seq)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The newest change's number (0 when there is none), read where `changes_after` reads.
    pub async fn last_change(&self) -> StoreResult<i64> {
        Ok(read_nearby!(self, &[], |_: &i64| true, |pool| {
            sqlx::query_scalar::<_, i64>("select coalesce(max(seq), 0) from change_log")
                .fetch_one(pool)
                .await
        })?)
    }

    pub async fn prune_change_log(&self, before: i64) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "delete from change_log where at < $1",
            before
        )?)
    }
}
