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

    /// Forgets events older than `before` (the retention setting); how many went.
    pub async fn prune_audit_events(&self, before: i64) -> StoreResult<u64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query("delete from audit_events where happened_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// Up to `limit` events matching the filter, newest first. Only the conditions that are set
    /// go into the statement, so each can use its index (a user's events come from the
    /// subject and actor indexes, not from a scan of the whole log).
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        enum Param<'a> {
            Text(&'a str),
            Int(i64),
        }
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Param<'_>> = Vec::new();
        let mut add = |condition: &str, param| {
            params.push(param);
            conditions.push(condition.replace('?', &format!("${}", params.len())));
        };
        if let Some(user_id) = &filter.user_id {
            add("(subject_id = ? or actor_id = ?)", Param::Text(user_id));
        }
        if let Some(event) = &filter.event {
            add("event = ?", Param::Text(event));
        }
        if let Some(from) = filter.from {
            add("happened_at >= ?", Param::Int(from));
        }
        if let Some(to) = filter.to {
            add("happened_at <= ?", Param::Int(to));
        }
        if let Some(before) = filter.before_id {
            add("id < ?", Param::Int(before));
        }
        params.push(Param::Int(limit));
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("where {}", conditions.join(" and "))
        };
        let sql = format!(
            "select id, happened_at, event, actor_id, subject_id, detail, ip, user_agent \
             from audit_events {where_clause} order by id desc limit ${}",
            params.len()
        );
        Ok(on_pool!(self, |pool| {
            let mut query = sqlx::query_as::<_, AuditEvent>(&sql);
            for param in &params {
                query = match param {
                    Param::Text(text) => query.bind(*text),
                    Param::Int(number) => query.bind(*number),
                };
            }
            query.fetch_all(pool).await
        })?)
    }
}
