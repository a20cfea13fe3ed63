//! `consents`: what a person allowed each app.

use super::{Store, StoreResult, execute_with_events, on_pool};
use crate::events::NewEvent;

impl Store {
    /// The scopes a person already allowed this client, space-separated; `None` when they have
    /// not allowed it anything.
    pub async fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "select scope from consents where user_id = $1 and client_id = $2",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Records what the person allowed. A wider consent keeps the time of the first: tokens
    /// issued since then rest on it (the token check compares `granted_at`).
    pub async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "insert into consents (user_id, client_id, scope, granted_at) values ($1, $2, $3, $4) \
             on conflict (user_id, client_id) do update set scope = excluded.scope",
            user_id,
            client_id,
            scope,
            now,
        );
        Ok(())
    }

    /// (client id, client name, scope, granted at) for the account page.
    pub async fn consents_of(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(String, String, String, i64)>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String, i64)>(
                "select c.client_id, coalesce(o.name, c.client_id), c.scope, c.granted_at \
                 from consents c left join oauth_clients o on o.id = c.client_id \
                 where c.user_id = $1 order by c.granted_at desc",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?)
    }
}
