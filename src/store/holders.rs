//! The holder of a session or a token, read with the one fact that decides whether it still
//! counts, in one query: these run on every signed-in page and every bearer check.

use sqlx::FromRow;

use super::users::{UserRow, user_columns};
use super::{Store, StoreResult, User, read_nearby};

/// A user's row with whether their session is registered, read in one query.
#[derive(FromRow)]
struct HolderRow {
    #[sqlx(flatten)]
    user: UserRow,
    flag: bool,
}

/// A user's row with the facts that decide one of their tokens, read in one query.
#[derive(FromRow)]
struct TokenHolderRow {
    #[sqlx(flatten)]
    user: UserRow,
    /// The token was revoked, or its grant ended.
    ended: bool,
    /// The consent the token rests on is there (or it needs none).
    consented: bool,
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
        token_epoch: i64,
    ) -> StoreResult<Option<(User, bool)>> {
        const SQL: &str = concat!(
            "select ",
            user_columns!(),
            ", (exists(select 1 from revoked_access_tokens where jti = $2) \
             or exists(select 1 from refresh_tokens where family_id = $3 \
             and revoked_at is not null)) as ended, \
             ($4 = '' or exists(select 1 from consents where user_id = $1 \
             and client_id = $4 and granted_at <= $5)) as consented from users where id = $1"
        );
        let (client_id, issued_at) = consent_since.unwrap_or(("", 0));
        let family = family.unwrap_or("");
        // The replica answers for the token when it is at least as new as the token: it knows
        // the person, their epoch is not older than the token's, and either it has seen the
        // token end (an end is final) or the consent the token rests on. Anything else may be
        // what it has not replayed yet (a person just signed up, a consent just given, a
        // sign-out everywhere followed by a new sign-in): the primary decides.
        let settled = |row: &Option<TokenHolderRow>| {
            row.as_ref().is_some_and(|row| {
                row.user.session_epoch >= token_epoch && (row.ended || row.consented)
            })
        };
        let row = read_nearby!(self, &[user_id, jti, family], settled, |pool| {
            sqlx::query_as::<_, TokenHolderRow>(SQL)
                .bind(user_id)
                .bind(jti)
                .bind(family)
                .bind(client_id)
                .bind(issued_at)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| {
            let good = !row.ended && row.consented;
            (row.user.into_user(), good)
        }))
    }

    /// The user of a browser session and whether the session is still registered, in one
    /// query: this runs on every signed-in page.
    pub async fn find_session_holder(
        &self,
        user_id: &str,
        session_id: &str,
        session_epoch: i64,
    ) -> StoreResult<Option<(User, bool)>> {
        const SQL: &str = concat!(
            "select ",
            user_columns!(),
            ", exists(select 1 from user_sessions where id = $2 and user_id = $1) as flag \
             from users where id = $1"
        );
        // A session the replica does not know may be just registered, and one newer than
        // the person's epoch there may follow a change it has not replayed: the primary
        // decides.
        let settled = |row: &Option<HolderRow>| {
            row.as_ref()
                .is_some_and(|row| row.flag && row.user.session_epoch >= session_epoch)
        };
        let row = read_nearby!(self, &[user_id, session_id], settled, |pool| {
            sqlx::query_as::<_, HolderRow>(SQL)
                .bind(user_id)
                .bind(session_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| (row.user.into_user(), row.flag)))
    }
}
