//! Links between local users and their accounts at upstream OpenID providers.

use sqlx::FromRow;

use super::{Store, StoreResult, execute, execute_with_events, on_pool};
use crate::events::NewEvent;

/// A linked upstream account.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub user_id: String,
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

macro_rules! identity_select {
    () => {
        "select provider, subject, user_id, email, created_at, last_used_at from user_identities"
    };
}

impl Store {
    pub async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<Identity>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, Identity>(concat!(
                identity_select!(),
                " where provider = $1 and subject = $2"
            ))
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await
        })?)
    }

    pub async fn identities_of(&self, user_id: &str) -> StoreResult<Vec<Identity>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, Identity>(concat!(
                identity_select!(),
                " where user_id = $1 order by provider, created_at"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Links an upstream account to a user. A link the upstream account already has gives a
    /// unique violation.
    pub async fn link_identity(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "insert into user_identities (provider, subject, user_id, email, created_at, \
                 last_used_at) values ($1, $2, $3, $4, $5, $5)",
            provider,
            subject,
            user_id,
            email,
            now,
        );
        Ok(())
    }

    /// Records a sign-in through the link, with the email the provider gave this time.
    pub async fn touch_identity(
        &self,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "update user_identities set last_used_at = $1, email = coalesce($2, email) \
                 where provider = $3 and subject = $4",
            now,
            email,
            provider,
            subject,
        )?;
        Ok(())
    }

    /// Removes one of a user's links; false when the user has no such link.
    pub async fn unlink_identity(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let removed = execute_with_events!(
            self,
            event.as_slice(),
            "delete from user_identities where user_id = $1 and provider = $2 and subject = $3",
            user_id,
            provider,
            subject,
        );
        Ok(removed == 1)
    }

    /// Removes every link of a user; returns how many there were.
    pub async fn unlink_all_identities(
        &self,
        user_id: &str,
        event: Option<NewEvent>,
    ) -> StoreResult<u64> {
        let removed = execute_with_events!(
            self,
            event.as_slice(),
            "delete from user_identities where user_id = $1",
            user_id,
        );
        Ok(removed)
    }
}
