//! Single-use links (by SHA-256 hash) and short mailed codes (by keyed hash).

use sqlx::FromRow;

use super::{QueuedMail, Store, StoreError, StoreResult, execute, on_pool, write_mails};

/// Why a link could not be used, so the page can say what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Used,
    Expired,
}

#[derive(FromRow)]
struct TokenRow {
    user_id: String,
    expires_at: i64,
    used_at: Option<i64>,
}

/// A live mailed code.
#[derive(Clone, Debug, FromRow)]
pub struct EmailCode {
    pub code_hash: String,
    pub expires_at: i64,
    pub attempts: i64,
    pub created_at: i64,
}

impl Store {
    pub async fn create_email_token(
        &self,
        token_hash: &str,
        user_id: &str,
        purpose: &str,
        now: i64,
        expires_at: i64,
        mail: Option<&QueuedMail>,
    ) -> StoreResult<()> {
        let mails = mail.as_slice();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into email_tokens (token_hash, user_id, purpose, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(purpose)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            write_mails!(tx, mails);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        if !mails.is_empty() {
            self.mail_queued();
        }
        Ok(())
    }

    /// The user a live token belongs to, without using it up (to show a form first).
    pub async fn check_email_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Result<String, TokenProblem>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, TokenRow>(
                "select user_id, expires_at, used_at from email_tokens \
                 where token_hash = $1 and purpose = $2",
            )
            .bind(token_hash)
            .bind(purpose)
            .fetch_optional(pool)
            .await
        })?;
        Ok(match row {
            None => Err(TokenProblem::Unknown),
            Some(row) if row.used_at.is_some() => Err(TokenProblem::Used),
            Some(row) if row.expires_at <= now => Err(TokenProblem::Expired),
            Some(row) => Ok(row.user_id),
        })
    }

    /// Uses a token up, atomically: of two concurrent uses exactly one succeeds.
    pub async fn consume_email_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Result<String, TokenProblem>> {
        let used = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "update email_tokens set used_at = $1 \
                 where token_hash = $2 and purpose = $3 and used_at is null and expires_at > $1 \
                 returning user_id",
            )
            .bind(now)
            .bind(token_hash)
            .bind(purpose)
            .fetch_optional(pool)
            .await
        })?;
        match used {
            Some(user_id) => Ok(Ok(user_id)),
            None => self
                .check_email_token(token_hash, purpose, now)
                .await
                .map(|r| {
                    // The token exists and looks live but the update lost a race: it is used.
                    r.and(Err(TokenProblem::Used))
                }),
        }
    }

    /// Ends every unused single-use token of `purpose` that a user has (all their reset links,
    /// say), as if used at `now`.
    pub async fn end_email_tokens(
        &self,
        user_id: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "update email_tokens set used_at = $1 \
                 where user_id = $2 and purpose = $3 and used_at is null",
            now,
            user_id,
            purpose,
        )?;
        Ok(())
    }

    /// Replaces the user's live code for `purpose`.
    pub async fn put_email_code(
        &self,
        user_id: &str,
        purpose: &str,
        code_hash: &str,
        now: i64,
        expires_at: i64,
        mail: &QueuedMail,
    ) -> StoreResult<()> {
        let mails = std::slice::from_ref(mail);
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("delete from email_codes where user_id = $1 and purpose = $2")
                .bind(user_id)
                .bind(purpose)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into email_codes (user_id, purpose, code_hash, created_at, expires_at, attempts) \
                 values ($1, $2, $3, $4, $5, 0)",
            )
            .bind(user_id)
            .bind(purpose)
            .bind(code_hash)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            write_mails!(tx, mails);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        self.mail_queued();
        Ok(())
    }

    pub async fn email_code(&self, user_id: &str, purpose: &str) -> StoreResult<Option<EmailCode>> {
        let code = on_pool!(self, |pool| {
            sqlx::query_as::<_, EmailCode>(
                "select code_hash, expires_at, attempts, created_at from email_codes \
                 where user_id = $1 and purpose = $2",
            )
            .bind(user_id)
            .bind(purpose)
            .fetch_optional(pool)
            .await
        })?;
        Ok(code)
    }

    pub async fn count_email_code_attempt(&self, user_id: &str, purpose: &str) -> StoreResult<()> {
        execute!(
            self,
            "update email_codes set attempts = attempts + 1 where user_id = $1 and purpose = $2",
            user_id,
            purpose,
        )?;
        Ok(())
    }

    /// Removes the code; true when this call removed it (so a code works once).
    pub async fn delete_email_code(&self, user_id: &str, purpose: &str) -> StoreResult<bool> {
        let removed = execute!(
            self,
            "delete from email_codes where user_id = $1 and purpose = $2",
            user_id,
            purpose,
        )?;
        Ok(removed > 0)
    }

    /// Forgets single-use links and mailed codes that expired before `before` (used or not).
    pub async fn prune_email_tokens(&self, before: i64) -> StoreResult<u64> {
        let links = super::execute!(
            self,
            "delete from email_tokens where expires_at < $1",
            before
        )?;
        let codes = super::execute!(
            self,
            "delete from email_codes where expires_at < $1",
            before
        )?;
        Ok(links + codes)
    }
}
