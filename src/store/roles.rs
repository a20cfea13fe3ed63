//! `user_roles`: the roles of each user (`admin`, and any an operator names).

use super::{Store, StoreResult, execute_with_events, on_pool};
use crate::events::NewEvent;

impl Store {
    pub async fn user_roles(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let roles = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "select role from user_roles where user_id = $1 order by role",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(roles)
    }
    /// Adds a role; true when the user did not have it (only then is `event` written).
    pub async fn add_user_role(
        &self,
        user_id: &str,
        role: &str,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let added = execute_with_events!(
            self,
            event.as_slice(),
            "insert into user_roles (user_id, role) values ($1, $2) on conflict do nothing",
            user_id,
            role,
        );
        // whoami shows the roles.
        self.wrote(&[user_id]).await;
        Ok(added == 1)
    }

    pub async fn remove_user_role(
        &self,
        user_id: &str,
        role: &str,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let removed = execute_with_events!(
            self,
            event.as_slice(),
            "delete from user_roles where user_id = $1 and role = $2",
            user_id,
            role,
        );
        // whoami shows the roles.
        self.wrote(&[user_id]).await;
        Ok(removed == 1)
    }
}
