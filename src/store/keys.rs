//! `signing_keys`: token signing keys, encrypted at rest.

use sqlx::FromRow;

use super::{Db, Store, StoreResult, execute, execute_with_events, on_pool};
use crate::events::NewEvent;

#[derive(Clone, Debug, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key_enc: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

impl Store {
    pub async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, SigningKeyRow>(
                "select kid, alg, private_key_enc, created_at, activates_at, retired_at \
                 from signing_keys order by activates_at, kid",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    pub async fn insert_signing_key(
        &self,
        key: &SigningKeyRow,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "insert into signing_keys (kid, alg, private_key_enc, created_at, activates_at, \
             retired_at) values ($1, $2, $3, $4, $5, $6)",
            &key.kid,
            &key.alg,
            &key.private_key_enc,
            key.created_at,
            key.activates_at,
            key.retired_at,
        );
        self.keys_changed();
        Ok(())
    }

    /// Stores `key` only when its algorithm has no key yet; true when it was stored. SQLite runs
    /// the statement under its one write lock; Postgres takes a transaction-scoped advisory lock
    /// first, so of nodes starting together exactly one key is stored.
    pub async fn insert_first_signing_key(&self, key: &SigningKeyRow) -> StoreResult<bool> {
        const INSERT_IF_NONE: &str = "insert into signing_keys (kid, alg, private_key_enc, \
             created_at, activates_at, retired_at) select $1, $2, $3, $4, $5, $6 \
             where not exists (select 1 from signing_keys where alg = $2)";
        const LOCK: &str = "select pg_advisory_xact_lock(hashtext('portcullis:signing_keys'))";
        let inserted = match &self.db {
            Db::Sqlite(pool) => sqlx::query(INSERT_IF_NONE)
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.private_key_enc)
                .bind(key.created_at)
                .bind(key.activates_at)
                .bind(key.retired_at)
                .execute(pool)
                .await?
                .rows_affected(),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(LOCK).execute(&mut *tx).await?;
                let inserted = sqlx::query(INSERT_IF_NONE)
                    .bind(&key.kid)
                    .bind(&key.alg)
                    .bind(&key.private_key_enc)
                    .bind(key.created_at)
                    .bind(key.activates_at)
                    .bind(key.retired_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                inserted
            }
        };
        if inserted == 1 {
            self.keys_changed();
        }
        Ok(inserted == 1)
    }

    /// Marks every older key of `alg` as retired from `at` (they stay published until the
    /// tokens they signed have expired).
    pub async fn retire_signing_keys(
        &self,
        alg: &str,
        except_kid: &str,
        at: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "update signing_keys set retired_at = $1 \
             where alg = $2 and kid <> $3 and retired_at is null",
            at,
            alg,
            except_kid,
        )?;
        self.keys_changed();
        Ok(())
    }
}
