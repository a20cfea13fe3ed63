//! One-off tasks that SQL alone cannot do, run at start-up until done (`maintenance_done`).

use super::users::email_key;
use super::{Store, StoreError, StoreResult, execute, on_pool};

/// The start-up task that rewrote addresses stored before they were normalised.
const NORMALISE_EMAILS_TASK: &str = "normalise_emails_v1";

impl Store {
    /// Rewrites addresses (and their keys) stored before addresses were normalised, once. Two
    /// accounts whose addresses turn out to be one are never merged: both are left as they
    /// were and returned as `(id, key)` pairs for the operator, and the task runs again at the
    /// next start until they are resolved.
    pub async fn normalise_stored_emails(&self, now: i64) -> StoreResult<Vec<(String, String)>> {
        let done = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>("select count(*) from maintenance_done where task = $1")
                .bind(NORMALISE_EMAILS_TASK)
                .fetch_one(pool)
                .await
        })?;
        if done > 0 {
            return Ok(Vec::new());
        }
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String)>(
                "select id, email, email_lower from users order by id",
            )
            .fetch_all(pool)
            .await
        })?;
        let mut collisions = Vec::new();
        for (id, email, key) in rows {
            let normal = crate::input::normalise_email(&email).unwrap_or_else(|| email.clone());
            let new_key = email_key(&email);
            if normal == email && new_key == key {
                continue;
            }
            let updated: StoreResult<u64> = execute!(
                self,
                "update users set email = $1, email_lower = $2 where id = $3",
                &normal,
                &new_key,
                &id,
            )
            .map_err(StoreError::from);
            match updated {
                Ok(_) => {}
                Err(e) if e.is_unique_violation() => collisions.push((id, new_key)),
                Err(e) => return Err(e),
            }
        }
        if collisions.is_empty() {
            execute!(
                self,
                "insert into maintenance_done (task, done_at) values ($1, $2) \
                 on conflict (task) do nothing",
                NORMALISE_EMAILS_TASK,
                now,
            )?;
        }
        Ok(collisions)
    }
}
