//! Changes to an account that touch several tables, each in one transaction: an admin (or the
//! person) sees all of it happen or none.

use super::{Store, StoreError, StoreResult, on_pool, write_events};

impl Store {
    /// Disables an account and ends everything it is signed in with: the flag and a new
    /// session epoch (sessions and tokens check both), and its session list.
    pub async fn disable_user(
        &self,
        user_id: &str,
        now: i64,
        event: Option<crate::events::NewEvent>,
    ) -> StoreResult<()> {
        let events = event.as_slice();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "update users set disabled = true, session_epoch = session_epoch + 1, \
                 updated_at = $1 where id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("delete from user_sessions where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            write_events!(tx, events);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        if !events.is_empty() {
            self.outbox_written();
        }
        self.security_changed_for(&[user_id]).await;
        Ok(())
    }

    /// Removes every second factor: the authenticator app, passkeys, recovery codes and email
    /// codes.
    pub async fn remove_second_factors(
        &self,
        user_id: &str,
        now: i64,
        event: Option<crate::events::NewEvent>,
    ) -> StoreResult<()> {
        let events = event.as_slice();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for sql in [
                "delete from totp_factors where user_id = $1",
                "delete from recovery_codes where user_id = $1",
                "delete from passkeys where user_id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            sqlx::query(
                "update users set email_otp_enabled = false, updated_at = $1 where id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            write_events!(tx, events);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        if !events.is_empty() {
            self.outbox_written();
        }
        self.security_changed_for(&[user_id]).await;
        Ok(())
    }

    /// Takes back a person's consent to a client with the refresh tokens it gave; the access
    /// tokens resting on it stop being active too. False when there was no consent.
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        event: Option<crate::events::NewEvent>,
    ) -> StoreResult<bool> {
        let events = event.as_slice();
        let revoked = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("delete from consents where user_id = $1 and client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 \
                 where user_id = $2 and client_id = $3 and revoked_at is null",
            )
            .bind(now)
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            if deleted == 1 {
                write_events!(tx, events);
            }
            tx.commit().await?;
            Ok::<_, StoreError>(deleted == 1)
        })?;
        if revoked && !events.is_empty() {
            self.outbox_written();
        }
        self.security_changed_for(&[user_id]).await;
        Ok(revoked)
    }
}
