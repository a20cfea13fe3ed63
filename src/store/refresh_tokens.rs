//! `refresh_tokens`: refresh tokens (stored as hashes) in families, one family per grant; each
//! rotation marks the old token rotated and stores its successor.

use sqlx::FromRow;

use super::users::{UserRow, user_columns};
use super::{Store, StoreError, StoreResult, User, execute, execute_with_events, on_pool};

#[derive(Clone, Debug, FromRow)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    /// RFC 8707 resources granted, space-separated.
    pub resources: String,
    pub auth_time: i64,
    pub amr: String,
    // Renamed in queries so that a join with `users` reads unambiguous columns.
    #[sqlx(rename = "rt_session_epoch")]
    pub session_epoch: i64,
    pub code_hash: Option<String>,
    #[sqlx(rename = "rt_created_at")]
    pub created_at: i64,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Where this token was issued: the sign-in, or the refresh that rotated its parent.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// When the family's first token was issued (empty for tokens from before migration 0008).
    pub family_created_at: Option<i64>,
}

/// A live token family of a person, for the list of their sign-ins.
#[derive(Clone, Debug, FromRow)]
pub struct TokenFamily {
    pub family_id: String,
    pub client_id: String,
    /// The client's name; empty for the first-party API, which has no client row.
    pub client_name: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The columns of a token, with `rotated_at` read as `$rotated_at`.
macro_rules! refresh_columns_with {
    ($rotated_at:literal) => {
        concat!(
            "rt.token_hash, rt.family_id, rt.client_id, rt.user_id, rt.scope, rt.resources, \
             rt.auth_time, rt.amr, rt.session_epoch as rt_session_epoch, rt.code_hash, \
             rt.created_at as rt_created_at, rt.expires_at, ",
            $rotated_at,
            " as rotated_at, rt.revoked_at, rt.ip, rt.user_agent, rt.family_created_at"
        )
    };
}

/// `rotated_at` also when only its successor says so (a rotation is the successor's insert).
macro_rules! refresh_columns {
    () => {
        refresh_columns_with!(
            "coalesce(rt.rotated_at, (select c.created_at from refresh_tokens c \
             where c.parent_hash = rt.token_hash))"
        )
    };
}

/// Without looking for a successor: the refresh grant's own rotation finds one (the
/// successor's insert is refused), so it need not read it first.
macro_rules! refresh_columns_for_rotation {
    () => {
        refresh_columns_with!("rt.rotated_at")
    };
}

/// `$13` is the parent a rotation's successor names (empty for a family's first token).
const INSERT_REFRESH_TOKEN: &str = "insert into refresh_tokens (token_hash, family_id, client_id, \
     user_id, scope, resources, auth_time, amr, session_epoch, code_hash, created_at, expires_at, \
     parent_hash, ip, user_agent, family_created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15, $16)";

/// Binds a refresh-token row in the order of `INSERT_REFRESH_TOKEN`.
macro_rules! bind_refresh_row {
    ($query:expr, $row:expr, $parent:expr) => {
        $query
            .bind(&$row.token_hash)
            .bind(&$row.family_id)
            .bind(&$row.client_id)
            .bind(&$row.user_id)
            .bind(&$row.scope)
            .bind(&$row.resources)
            .bind($row.auth_time)
            .bind(&$row.amr)
            .bind($row.session_epoch)
            .bind(&$row.code_hash)
            .bind($row.created_at)
            .bind($row.expires_at)
            .bind($parent)
            .bind(&$row.ip)
            .bind(&$row.user_agent)
            .bind($row.family_created_at)
    };
}

#[derive(FromRow)]
struct RefreshHolderRow {
    #[sqlx(flatten)]
    token: RefreshTokenRow,
    #[sqlx(flatten)]
    user: UserRow,
}

impl Store {
    pub async fn insert_refresh_token(&self, row: &RefreshTokenRow) -> StoreResult<()> {
        on_pool!(self, |pool| {
            bind_refresh_row!(sqlx::query(INSERT_REFRESH_TOKEN), row, None::<&str>)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<RefreshTokenRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, RefreshTokenRow>(concat!(
                "select ",
                refresh_columns!(),
                " from refresh_tokens rt where token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// A refresh token with its holder, in one query: the refresh grant needs both. A token
    /// rotated by its successor's insert reads as not rotated here; the rotation finds it.
    pub async fn find_refresh_token_and_holder(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(RefreshTokenRow, User)>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, RefreshHolderRow>(concat!(
                "select ",
                refresh_columns_for_rotation!(),
                ", ",
                user_columns!(),
                " from refresh_tokens rt join users on users.id = rt.user_id \
                 where rt.token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|row| (row.token, row.user.into_user())))
    }

    /// Rotates a refresh token: stores its successor `next`, which names it as its parent. One
    /// statement, the same on both backends: the successor is stored only while the parent is
    /// live, and the unique index on `parent_hash` lets only one successor name a parent, so
    /// of two racing rotations one wins. A token with a successor counts as rotated (see
    /// `refresh_columns!`). False, with nothing stored, when the old token was already rotated
    /// or revoked (a reuse, or a lost race between two refreshes).
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        next: Option<&RefreshTokenRow>,
    ) -> StoreResult<bool> {
        let Some(row) = next else {
            let rotated = execute!(
                self,
                "update refresh_tokens set rotated_at = $1 \
                 where token_hash = $2 and rotated_at is null and revoked_at is null",
                now,
                old_hash,
            )?;
            return Ok(rotated == 1);
        };
        const ROTATE: &str = "insert into refresh_tokens (token_hash, family_id, client_id, \
             user_id, scope, resources, auth_time, amr, session_epoch, code_hash, created_at, \
             expires_at, parent_hash, ip, user_agent, family_created_at) \
             select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
             where exists (select 1 from refresh_tokens where token_hash = $13 \
             and rotated_at is null and revoked_at is null)";
        let inserted = on_pool!(self, |pool| {
            bind_refresh_row!(sqlx::query(ROTATE), row, Some(old_hash))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::from);
        match inserted {
            Ok(count) => Ok(count == 1),
            Err(e) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends a family: its refresh tokens and the access tokens issued with them.
    pub async fn revoke_refresh_family(
        &self,
        family_id: &str,
        now: i64,
        event: Option<crate::events::NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "update refresh_tokens set revoked_at = $1 where family_id = $2 and revoked_at is null",
            now,
            family_id,
        );
        self.security_changed_for(&[family_id]).await;
        Ok(())
    }

    pub async fn revoke_refresh_tokens_of_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "update refresh_tokens set revoked_at = $1 where family_id in \
             (select family_id from refresh_tokens where code_hash = $2) and revoked_at is null",
            now,
            code_hash,
        )?;
        self.security_changed();
        Ok(())
    }

    /// A person's live token families (API sign-ins and apps with refresh tokens), most
    /// recently used first. The live token of a family is its newest, so its row says when and
    /// where the family was last used.
    pub async fn token_families_of(
        &self,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Vec<TokenFamily>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, TokenFamily>(
                "select rt.family_id, rt.client_id, o.name as client_name, \
                 coalesce(rt.family_created_at, rt.created_at) as created_at, \
                 rt.created_at as last_used_at, rt.ip, rt.user_agent \
                 from refresh_tokens rt left join oauth_clients o on o.id = rt.client_id \
                 where rt.user_id = $1 and rt.rotated_at is null and rt.revoked_at is null \
                 and rt.expires_at > $2 and not exists (select 1 from refresh_tokens c \
                 where c.parent_hash = rt.token_hash) order by rt.created_at desc",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Ends one of a person's token families; false when they have no such live family.
    pub async fn revoke_family_of(
        &self,
        user_id: &str,
        family_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let revoked = execute!(
            self,
            "update refresh_tokens set revoked_at = $1 \
             where family_id = $2 and user_id = $3 and revoked_at is null",
            now,
            family_id,
            user_id,
        )?;
        self.security_changed_for(&[family_id, user_id]).await;
        Ok(revoked > 0)
    }

    /// Forgets refresh tokens that expired before `before`. Their families' access tokens
    /// expired long before (`before` lies the longest access-token life back), so forgetting a
    /// revoked row cannot bring an access token back.
    pub async fn prune_refresh_tokens(&self, before: i64) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "delete from refresh_tokens where expires_at < $1",
            before
        )?)
    }
}
