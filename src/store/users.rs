use sqlx::FromRow;

use super::{Db, Store, StoreError, StoreResult, on_pool};

/// A person's account.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
    pub disabled: bool,
    pub email_verified: bool,
    pub email_otp_enabled: bool,
    /// A confirmed authenticator app, read with the user (as the roles are).
    pub totp_enabled: bool,
    /// Sessions remember the epoch they started in; bumping it ends all of them.
    pub session_epoch: i64,
    pub roles: Vec<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// What it takes to create an account.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: String,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    /// True when an upstream provider vouched for the address.
    pub email_verified: bool,
    /// The upstream account the new user signs in with, linked in the same transaction.
    pub identity: Option<NewIdentity>,
    pub now: i64,
}

/// A link to an account at an upstream OpenID provider.
#[derive(Clone, Debug)]
pub struct NewIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
}

#[derive(FromRow)]
pub(super) struct UserRow {
    id: String,
    email: String,
    display_name: Option<String>,
    password_hash: Option<String>,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
    disabled: bool,
    email_verified: bool,
    email_otp_enabled: bool,
    session_epoch: i64,
    /// Space-separated, from `user_columns!`.
    roles: Option<String>,
    /// From `user_columns!` too.
    totp_enabled: bool,
}

impl UserRow {
    pub(super) fn into_user(self) -> User {
        let mut roles: Vec<String> = self
            .roles
            .unwrap_or_default()
            .split(' ')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        roles.sort();
        User {
            id: self.id,
            email: self.email,
            display_name: self.display_name,
            password_hash: self.password_hash,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_login_at: self.last_login_at,
            disabled: self.disabled,
            email_verified: self.email_verified,
            email_otp_enabled: self.email_otp_enabled,
            totp_enabled: self.totp_enabled,
            session_epoch: self.session_epoch,
            roles,
        }
    }
}

/// A user's columns, their roles and whether an authenticator is confirmed, for `concat!` into
/// static SQL (`string_agg` exists on SQLite since 3.44 and on Postgres).
macro_rules! user_columns {
    () => {
        "users.id, users.email, users.display_name, users.password_hash, users.created_at, \
         users.updated_at, users.last_login_at, users.disabled, users.email_verified, \
         users.email_otp_enabled, users.session_epoch, \
         (select string_agg(role, ' ') from user_roles r where r.user_id = users.id) as roles, \
         exists(select 1 from totp_factors t where t.user_id = users.id \
         and t.confirmed_at is not null) as totp_enabled"
    };
}
pub(super) use user_columns;

/// A user's row with one yes/no fact about them (a token revoked, a session registered),
/// read in one query.
#[derive(FromRow)]
struct HolderRow {
    #[sqlx(flatten)]
    user: UserRow,
    flag: bool,
}

/// Emails are looked up through `email_lower`, the key that look-alike spellings of one
/// address share (`input::email_lookup_key`).
pub fn email_key(email: &str) -> String {
    crate::input::email_lookup_key(email)
}

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
            let updated: StoreResult<u64> = on_pool!(self, |pool| {
                sqlx::query("update users set email = $1, email_lower = $2 where id = $3")
                    .bind(&normal)
                    .bind(&new_key)
                    .bind(&id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
            .map_err(StoreError::from);
            match updated {
                Ok(_) => {}
                Err(e) if e.is_unique_violation() => collisions.push((id, new_key)),
                Err(e) => return Err(e),
            }
        }
        if collisions.is_empty() {
            on_pool!(self, |pool| {
                sqlx::query("insert into maintenance_done (task, done_at) values ($1, $2)")
                    .bind(NORMALISE_EMAILS_TASK)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        Ok(collisions)
    }

    /// Creates a user and their roles in one transaction. A taken email gives a unique
    /// violation (`StoreError::is_unique_violation`).
    pub async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let id = uuid::Uuid::now_v7().to_string();
        let email_lower = email_key(&new.email);
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into users (id, email, email_lower, password_hash, display_name, \
                                  created_at, updated_at, disabled, email_verified) \
                 values ($1, $2, $3, $4, $5, $6, $6, false, $7)",
            )
            .bind(&id)
            .bind(&new.email)
            .bind(&email_lower)
            .bind(&new.password_hash)
            .bind(&new.display_name)
            .bind(new.now)
            .bind(new.email_verified)
            .execute(&mut *tx)
            .await?;
            if let Some(identity) = &new.identity {
                sqlx::query(
                    "insert into user_identities (provider, subject, user_id, email, created_at, \
                     last_used_at) values ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&identity.provider)
                .bind(&identity.subject)
                .bind(&id)
                .bind(&identity.email)
                .bind(new.now)
                .execute(&mut *tx)
                .await?;
            }
            for role in &new.roles {
                sqlx::query("insert into user_roles (user_id, role) values ($1, $2)")
                    .bind(&id)
                    .bind(role)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        let mut roles = new.roles;
        roles.sort();
        roles.dedup();
        Ok(User {
            id,
            email: new.email,
            display_name: new.display_name,
            password_hash: new.password_hash,
            created_at: new.now,
            updated_at: new.now,
            last_login_at: None,
            disabled: false,
            email_verified: new.email_verified,
            email_otp_enabled: false,
            totp_enabled: false,
            session_epoch: 0,
            roles,
        })
    }

    pub async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let key = email_key(email);
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(concat!(
                "select ",
                user_columns!(),
                " from users where email_lower = $1"
            ))
            .bind(&key)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(UserRow::into_user))
    }

    pub async fn find_user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(concat!(
                "select ",
                user_columns!(),
                " from users where id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(UserRow::into_user))
    }

    /// One page of the admin's user list, ordered by email: the users after `after` (an
    /// email_lower, for keyset pagination), only those whose email or name starts with `prefix`
    /// when one is given. Both filters use indexes, so pages stay fast with many users.
    pub async fn list_users(
        &self,
        prefix: Option<&str>,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        let rows = match prefix
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
        {
            None => {
                let sql = concat!(
                    "select ",
                    user_columns!(),
                    " from users where email_lower > $1 order by email_lower limit $2"
                );
                on_pool!(self, |pool| {
                    sqlx::query_as::<_, UserRow>(sql)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await
                })?
            }
            // SQLite compares text bytewise: a prefix is a range up to the prefix followed by the
            // highest code point. Postgres uses `like` on text_pattern_ops indexes.
            Some(prefix) => match &self.db {
                Db::Sqlite(pool) => {
                    // Two range scans, each on its own index and cut at one page, merged:
                    // an `or` would make SQLite walk the whole email index instead.
                    let sql = concat!(
                        "select * from (select ",
                        user_columns!(),
                        ", email_lower from users \
                         where email_lower >= $1 and email_lower < $2 and email_lower > $3 \
                         order by email_lower limit $4) \
                         union \
                         select * from (select ",
                        user_columns!(),
                        ", email_lower from users \
                         where lower(display_name) >= $1 and lower(display_name) < $2 \
                         and email_lower > $3 order by email_lower limit $4) \
                         order by email_lower limit $4"
                    );
                    sqlx::query_as::<_, UserRow>(sql)
                        .bind(&prefix)
                        .bind(format!("{prefix}\u{10FFFF}"))
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
                Db::Postgres(pool) => {
                    let sql = concat!(
                        "select ",
                        user_columns!(),
                        " from users where (email_lower like $1 or lower(display_name) like $1) \
                         and email_lower > $2 order by email_lower limit $3"
                    );
                    sqlx::query_as::<_, UserRow>(sql)
                        .bind(format!("{}%", escape_like(&prefix)))
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
            },
        };
        Ok(rows.into_iter().map(UserRow::into_user).collect())
    }

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

    pub async fn record_login(&self, user_id: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("update users set last_login_at = $1 where id = $2")
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("update users set disabled = $1, updated_at = $2 where id = $3")
                .bind(disabled)
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.security_changed();
        Ok(())
    }

    pub async fn set_email_verified(&self, user_id: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("update users set email_verified = true, updated_at = $1 where id = $2")
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Sets a new password hash and ends every session of the user (bumps the session epoch).
    /// Returns the new epoch, for the one session that may continue.
    pub async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<i64> {
        let epoch = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "update users set password_hash = $1, session_epoch = session_epoch + 1, \
                 updated_at = $2 where id = $3 returning session_epoch",
            )
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .fetch_one(pool)
            .await
        })?;
        self.security_changed();
        self.forget_user_sessions(user_id).await?;
        Ok(epoch)
    }

    pub async fn set_email_otp_enabled(
        &self,
        user_id: &str,
        enabled: bool,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("update users set email_otp_enabled = $1, updated_at = $2 where id = $3")
                .bind(enabled)
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        // Cached token checks carry the user.
        self.security_changed();
        Ok(())
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        let count = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>("select count(*) from users")
                .fetch_one(pool)
                .await
        })?;
        Ok(count)
    }
}

impl Store {
    /// "Sign out everywhere": ends every session and makes every token of the user inactive
    /// (they all carry the old epoch).
    pub async fn bump_session_epoch(&self, user_id: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "update users set session_epoch = session_epoch + 1, updated_at = $1 where id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.security_changed();
        self.forget_user_sessions(user_id).await
    }

    /// The epoch already ended the sessions; this clears them from the lists.
    async fn forget_user_sessions(&self, user_id: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("delete from user_sessions where user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
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

/// Makes `%`, `_` and the backslash (Postgres' default `like` escape) match literally.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Store {
    /// Adds a role; true when the user did not have it.
    pub async fn add_user_role(&self, user_id: &str, role: &str) -> StoreResult<bool> {
        let added = on_pool!(self, |pool| {
            sqlx::query(
                "insert into user_roles (user_id, role) values ($1, $2) on conflict do nothing",
            )
            .bind(user_id)
            .bind(role)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(added == 1)
    }

    pub async fn remove_user_role(&self, user_id: &str, role: &str) -> StoreResult<bool> {
        let removed = on_pool!(self, |pool| {
            sqlx::query("delete from user_roles where user_id = $1 and role = $2")
                .bind(user_id)
                .bind(role)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(removed == 1)
    }

    /// Deletes the user; their roles, factors, links, consents and tokens go with them
    /// (foreign keys cascade).
    pub async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        let removed = on_pool!(self, |pool| {
            sqlx::query("delete from users where id = $1")
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.security_changed();
        Ok(removed == 1)
    }
}
