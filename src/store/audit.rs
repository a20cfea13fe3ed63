//! The audit log: security-relevant events, newest first.

use sqlx::FromRow;

use super::{Store, StoreResult, on_pool};

/// One event as stored.
#[derive(Clone, Debug, FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub happened_at: i64,
    pub event: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What the admin's audit page filters on; every part is optional.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Events done by or to this user.
    pub user_id: Option<String>,
    pub event: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Keyset pagination: events older than this id.
    pub before_id: Option<i64>,
}

impl Store {
    pub async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "insert into audit_events (happened_at, event, actor_id, subject_id, detail, ip, \
                 user_agent) values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event.happened_at)
            .bind(&event.event)
            .bind(&event.actor_id)
            .bind(&event.subject_id)
            .bind(&event.detail)
            .bind(&event.ip)
            .bind(&event.user_agent)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Up to `limit` events matching the filter, newest first.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        // Unset filters compare against NULL and drop out, so one statement serves every mix.
        let sql = "select id, happened_at, event, actor_id, subject_id, detail, ip, user_agent \
                   from audit_events \
                   where ($1 is null or subject_id = $1 or actor_id = $1) \
                   and ($2 is null or event = $2) \
                   and ($3 is null or happened_at >= $3) \
                   and ($4 is null or happened_at <= $4) \
                   and ($5 is null or id < $5) \
                   order by id desc limit $6";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, AuditEvent>(sql)
                .bind(&filter.user_id)
                .bind(&filter.event)
                .bind(filter.from)
                .bind(filter.to)
                .bind(filter.before_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?)
    }
}
