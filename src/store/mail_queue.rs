//! Mail waiting for the workers: queued by the request (in its transaction where there is one),
//! sent with retries, the sealed message erased once it is sent or given up.

use sqlx::FromRow;

use super::{Store, StoreResult, execute, on_pool};
use crate::store::Attempt;

/// A mail to queue; `sealed_body` is the message sealed with the server key.
#[derive(Clone, Debug)]
pub struct QueuedMail {
    pub recipient: String,
    pub subject: String,
    pub sealed_body: String,
    pub now: i64,
}

/// A mail a worker holds the lease of.
#[derive(Clone, Debug, FromRow)]
pub struct ClaimedMail {
    pub id: i64,
    pub recipient: String,
    pub sealed_body: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
}

/// A mail that could not be sent, for the admin panel.
#[derive(Clone, Debug, FromRow)]
pub struct UnsentMail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// Writes `$mails` inside the open transaction `$tx`.
macro_rules! write_mails {
    ($tx:expr, $mails:expr) => {
        for mail in $mails {
            sqlx::query(
                "insert into mail_queue (recipient, subject, sealed_body, next_attempt_at, \
                 created_at) values ($1, $2, $3, $4, $4)",
            )
            .bind(&mail.recipient)
            .bind(&mail.subject)
            .bind(&mail.sealed_body)
            .bind(mail.now)
            .execute(&mut *$tx)
            .await?;
        }
    };
}
pub(crate) use write_mails;

impl Store {
    pub async fn queue_mail(&self, mail: &QueuedMail) -> StoreResult<()> {
        execute!(
            self,
            "insert into mail_queue (recipient, subject, sealed_body, next_attempt_at, \
             created_at) values ($1, $2, $3, $4, $4)",
            &mail.recipient,
            &mail.subject,
            &mail.sealed_body,
            mail.now,
        )?;
        self.mail_queued();
        Ok(())
    }

    /// Leases up to `limit` due mails until `leased_until` (named after the node, as the
    /// deliveries' leases are).
    pub async fn claim_mail(
        &self,
        node: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedMail>> {
        const CANDIDATES: &str = "select id from mail_queue where state = 'pending' \
             and next_attempt_at <= $1 and leased_until <= $1 order by id limit $2";
        let lease = format!("{node}/{}", uuid::Uuid::now_v7());
        let skip_locked = match self.db {
            super::Db::Sqlite(_) => "",
            super::Db::Postgres(_) => " for update skip locked",
        };
        let claim = format!(
            "update mail_queue set leased_until = $3, lease = $4 \
             where id in ({CANDIDATES}{skip_locked})"
        );
        execute!(self, &claim, now, limit, leased_until, &lease)?;
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, ClaimedMail>(
                "select id, recipient, sealed_body, attempts, created_at from mail_queue \
                 where lease = $1 order by id",
            )
            .bind(&lease)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Records how a sending attempt ended; a sent or abandoned mail loses its message.
    pub async fn finish_mail(&self, id: i64, attempt: Attempt<'_>, now: i64) -> StoreResult<()> {
        match attempt {
            Attempt::Delivered { .. } => execute!(
                self,
                "update mail_queue set state = 'sent', sealed_body = null, \
                 attempts = attempts + 1, last_error = null, finished_at = $1, leased_until = 0, \
                 lease = null where id = $2",
                now,
                id,
            )?,
            Attempt::Failed {
                error,
                retry_at: Some(at),
                ..
            } => execute!(
                self,
                "update mail_queue set attempts = attempts + 1, last_error = $1, \
                 next_attempt_at = $2, leased_until = 0, lease = null where id = $3",
                error,
                at,
                id,
            )?,
            Attempt::Failed {
                error,
                retry_at: None,
                ..
            } => execute!(
                self,
                "update mail_queue set state = 'failed', sealed_body = null, \
                 attempts = attempts + 1, last_error = $1, finished_at = $2, leased_until = 0, \
                 lease = null where id = $3",
                error,
                now,
                id,
            )?,
        };
        Ok(())
    }

    /// Gives back the mail leases this node held before it started.
    pub async fn release_mail_leases(&self, node: &str) -> StoreResult<u64> {
        let prefix = format!("{node}/");
        Ok(execute!(
            self,
            "update mail_queue set leased_until = 0, lease = null \
             where lease is not null and substr(lease, 1, length($1)) = $1",
            &prefix,
        )?)
    }

    /// Mails not yet tried once (tests wait for none before reading what was sent).
    pub async fn untried_mail(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from mail_queue where state = 'pending' and attempts = 0",
            )
            .fetch_one(pool)
            .await
        })?)
    }

    /// Mails that failed at least once and are not sent: given up, or still being retried.
    pub async fn unsent_mail(&self, limit: i64) -> StoreResult<Vec<UnsentMail>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, UnsentMail>(
                "select id, recipient, subject, state, attempts, last_error, created_at \
                 from mail_queue where state <> 'sent' and attempts > 0 \
                 order by id desc limit $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Forgets sent and failed mail finished before `before`.
    pub async fn prune_mail(&self, before: i64) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "delete from mail_queue where state <> 'pending' and finished_at < $1",
            before,
        )?)
    }
}
