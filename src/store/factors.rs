//! Second factors: the authenticator-app secret and recovery codes.

use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, execute, execute_with_events, on_pool};
use crate::events::NewEvent;

#[derive(Clone, Debug, FromRow)]
pub struct TotpFactor {
    /// Encrypted with the server key (see `crypto::seal`).
    pub secret_enc: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    /// The last time step whose code was accepted; older or equal steps are replays.
    pub last_used_step: i64,
}

impl Store {
    pub async fn totp_factor(&self, user_id: &str) -> StoreResult<Option<TotpFactor>> {
        let factor = on_pool!(self, |pool| {
            sqlx::query_as::<_, TotpFactor>(
                "select secret_enc, created_at, confirmed_at, last_used_step from totp_factors \
                 where user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(factor)
    }

    /// Starts (or restarts) enrolment with a new, unconfirmed secret.
    pub async fn put_pending_totp(
        &self,
        user_id: &str,
        secret_enc: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("delete from totp_factors where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into totp_factors (user_id, secret_enc, created_at, last_used_step) \
                 values ($1, $2, $3, 0)",
            )
            .bind(user_id)
            .bind(secret_enc)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
    }

    pub async fn confirm_totp(
        &self,
        user_id: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "update totp_factors set confirmed_at = $1 where user_id = $2",
            now,
            user_id,
        );
        // Cached token checks carry the user, whose `totp_enabled` just changed.
        self.security_changed_for(&[user_id]).await;
        Ok(())
    }

    /// Records that the code of `step` was accepted. False when that step (or a later one) was
    /// already used: a replay, refused even when two requests race.
    pub async fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let updated = execute!(
            self,
            "update totp_factors set last_used_step = $1 \
                 where user_id = $2 and last_used_step < $1",
            step,
            user_id,
        )?;
        Ok(updated == 1)
    }

    pub async fn delete_totp(&self, user_id: &str, event: Option<NewEvent>) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "delete from totp_factors where user_id = $1",
            user_id
        );
        self.security_changed_for(&[user_id]).await;
        Ok(())
    }

    /// Replaces all recovery codes of the user.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[String],
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("delete from recovery_codes where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            for hash in code_hashes {
                sqlx::query("insert into recovery_codes (user_id, code_hash) values ($1, $2)")
                    .bind(user_id)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Uses a recovery code up; false when it is unknown or already used.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let updated = execute!(
            self,
            "update recovery_codes set used_at = $1 \
                 where user_id = $2 and code_hash = $3 and used_at is null",
            now,
            user_id,
            code_hash,
        )?;
        Ok(updated == 1)
    }

    pub async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<i64> {
        let count = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from recovery_codes where user_id = $1 and used_at is null",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(count)
    }

    pub async fn delete_recovery_codes(&self, user_id: &str) -> StoreResult<()> {
        self.replace_recovery_codes(user_id, &[]).await
    }
}
