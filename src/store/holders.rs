//! The holder of a session or a token, read with the one fact that decides whether it still
//! counts, in one query: these run on every signed-in page and every bearer check.

use sqlx::FromRow;

use super::users::{UserRow, user_columns};
use super::{Store, StoreResult, User, on_pool};

/// A user's row with one yes/no fact about them (a token revoked, a session registered),
/// read in one query.
#[derive(FromRow)]
struct HolderRow {
    #[sqlx(flatten)]
    user: UserRow,
    flag: bool,
}

impl Store {
    /// The holder of a person's access token and whether the token is still good, in one
    /// query (bearer checks run on every API call): its `jti` was not revoked, its grant
    /// (`family`, the refresh-token family) has not ended, and, when `consent_since` names a
    /// client and the token's issue time, the person's consent to that client is still there
    /// and no newer than the token.
    pub async fn find_token_holder(
        &self,
        user_id: &str,
        jti: &str,
        family: Option<&str>,
        consent_since: Option<(&str, i64)>,
    ) -> StoreResult<Option<(User, bool)>> {
        const SQL: &str = concat!(
            "select ",
            user_columns!(),
            ", (not exists(select 1 from revoked_access_tokens where jti = $2) \
             and not exists(select 1 from refresh_tokens where family_id = $3 \
             and revoked_at is not null) \
             and ($4 = '' or exists(select 1 from consents where user_id = $1 \
             and client_id = $4 and granted_at <= $5))) as flag from users where id = $1"
        );
        let (client_id, issued_at) = consent_since.unwrap_or(("", 0));
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, HolderRow>(SQL)
                .bind(user_id)
                .bind(jti)
                .bind(family.unwrap_or(""))
                .bind(client_id)
                .bind(issued_at)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| (row.user.into_user(), row.flag)))
    }
    /// The user of a browser session and whether the session is still registered, in one
    /// query: this runs on every signed-in page.
    pub async fn find_session_holder(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> StoreResult<Option<(User, bool)>> {
        const SQL: &str = concat!(
            "select ",
            user_columns!(),
            ", exists(select 1 from user_sessions where id = $2 and user_id = $1) as flag \
             from users where id = $1"
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, HolderRow>(SQL)
                .bind(user_id)
                .bind(session_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| (row.user.into_user(), row.flag)))
    }
}
