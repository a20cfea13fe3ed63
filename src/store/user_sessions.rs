//! The registry of signed-in browser sessions: one row per session, whatever the session store
//! (SQL or Redis). A session is valid only while its row exists.

use sqlx::FromRow;

use super::{Store, StoreResult, execute, on_pool};

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct UserSession {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Space-separated sign-in methods (`pwd totp`).
    pub methods: String,
}

impl Store {
    pub async fn insert_user_session(&self, row: &UserSession) -> StoreResult<()> {
        execute!(
            self,
            "insert into user_sessions (id, user_id, created_at, last_seen_at, ip, user_agent, \
                 methods) values ($1, $2, $3, $4, $5, $6, $7)",
            &row.id,
            &row.user_id,
            row.created_at,
            row.last_seen_at,
            &row.ip,
            &row.user_agent,
            &row.methods,
        )?;
        Ok(())
    }

    pub async fn touch_user_session(&self, id: &str, now: i64) -> StoreResult<()> {
        execute!(
            self,
            "update user_sessions set last_seen_at = $1 where id = $2",
            now,
            id,
        )?;
        Ok(())
    }

    /// Ends one session of a user; false when the user has no such session.
    pub async fn delete_user_session(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let removed = execute!(
            self,
            "delete from user_sessions where id = $1 and user_id = $2",
            id,
            user_id,
        )?;
        Ok(removed == 1)
    }

    /// A user's sessions seen since `seen_since` and started since `started_since`, most
    /// recently used first.
    pub async fn user_sessions_of(
        &self,
        user_id: &str,
        seen_since: i64,
        started_since: i64,
    ) -> StoreResult<Vec<UserSession>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, UserSession>(
                "select id, user_id, created_at, last_seen_at, ip, user_agent, methods \
                 from user_sessions where user_id = $1 and last_seen_at >= $2 and created_at >= $3 \
                 order by last_seen_at desc",
            )
            .bind(user_id)
            .bind(seen_since)
            .bind(started_since)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Forgets sessions that have timed out anyway.
    pub async fn prune_user_sessions(
        &self,
        seen_before: i64,
        started_before: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "delete from user_sessions where last_seen_at < $1 or created_at < $2",
            seen_before,
            started_before,
        )?;
        Ok(())
    }
}
