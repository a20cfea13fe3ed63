use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, execute, execute_with_events, on_pool, write_events};
use crate::events::NewEvent;

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
    /// At least one passkey, read with the user too.
    pub has_passkey: bool,
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
    pub(super) disabled: bool,
    email_verified: bool,
    email_otp_enabled: bool,
    pub(super) session_epoch: i64,
    /// Space-separated, from `user_columns!`.
    roles: Option<String>,
    /// From `user_columns!` too.
    totp_enabled: bool,
    has_passkey: bool,
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
            has_passkey: self.has_passkey,
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
         and t.confirmed_at is not null) as totp_enabled, \
         exists(select 1 from passkeys p where p.user_id = users.id) as has_passkey"
    };
}
pub(super) use user_columns;

/// Emails are looked up through `email_lower`, the key that look-alike spellings of one
/// address share (`input::email_lookup_key`).
pub fn email_key(email: &str) -> String {
    crate::input::email_lookup_key(email)
}

impl Store {
    /// Creates a user and their roles in one transaction, with the events `events` makes of the
    /// new account (its `user.created`). A taken email gives a unique violation
    /// (`StoreError::is_unique_violation`) and writes no event.
    pub async fn create_user(
        &self,
        new: NewUser,
        events: impl FnOnce(&User) -> Option<NewEvent>,
    ) -> StoreResult<User> {
        let mut roles = new.roles.clone();
        roles.sort();
        roles.dedup();
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
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
            has_passkey: false,
            session_epoch: 0,
            roles,
        };
        let events: Vec<NewEvent> = events(&user).into_iter().collect();
        let email_lower = email_key(&user.email);
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into users (id, email, email_lower, password_hash, display_name, \
                                  created_at, updated_at, disabled, email_verified) \
                 values ($1, $2, $3, $4, $5, $6, $6, false, $7)",
            )
            .bind(&user.id)
            .bind(&user.email)
            .bind(&email_lower)
            .bind(&user.password_hash)
            .bind(&user.display_name)
            .bind(user.created_at)
            .bind(user.email_verified)
            .execute(&mut *tx)
            .await?;
            if let Some(identity) = &new.identity {
                sqlx::query(
                    "insert into user_identities (provider, subject, user_id, email, created_at, \
                     last_used_at) values ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&identity.provider)
                .bind(&identity.subject)
                .bind(&user.id)
                .bind(&identity.email)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await?;
            }
            for role in &user.roles {
                sqlx::query("insert into user_roles (user_id, role) values ($1, $2)")
                    .bind(&user.id)
                    .bind(role)
                    .execute(&mut *tx)
                    .await?;
            }
            write_events!(tx, &events);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        if !events.is_empty() {
            self.outbox_written();
        }
        Ok(user)
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

    pub async fn record_login(&self, user_id: &str, now: i64) -> StoreResult<()> {
        execute!(
            self,
            "update users set last_login_at = $1 where id = $2",
            now,
            user_id,
        )?;
        Ok(())
    }

    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "update users set disabled = $1, updated_at = $2 where id = $3 and disabled <> $1",
            disabled,
            now,
            user_id,
        );
        self.security_changed_for(&[user_id]).await;
        Ok(())
    }

    /// Marks the address verified; the event is written only when it was not yet.
    pub async fn set_email_verified(
        &self,
        user_id: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "update users set email_verified = true, updated_at = $1 \
             where id = $2 and email_verified = false",
            now,
            user_id,
        );
        // userinfo and whoami show it.
        self.wrote(&[user_id]).await;
        Ok(())
    }

    /// Sets a new password hash and ends every session of the user (bumps the session epoch).
    /// Returns the new epoch, for the one session that may continue.
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<i64> {
        let events = event.as_slice();
        let epoch = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let epoch = sqlx::query_scalar::<_, i64>(
                "update users set password_hash = $1, session_epoch = session_epoch + 1, \
                 updated_at = $2 where id = $3 returning session_epoch",
            )
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
            write_events!(tx, events);
            tx.commit().await?;
            Ok::<_, StoreError>(epoch)
        })?;
        if !events.is_empty() {
            self.outbox_written();
        }
        self.security_changed_for(&[user_id]).await;
        self.forget_user_sessions(user_id).await?;
        Ok(epoch)
    }

    pub async fn set_email_otp_enabled(
        &self,
        user_id: &str,
        enabled: bool,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "update users set email_otp_enabled = $1, updated_at = $2 \
             where id = $3 and email_otp_enabled <> $1",
            enabled,
            now,
            user_id,
        );
        // Cached token checks carry the user.
        self.security_changed_for(&[user_id]).await;
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
    pub async fn bump_session_epoch(
        &self,
        user_id: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "update users set session_epoch = session_epoch + 1, updated_at = $1 where id = $2",
            now,
            user_id,
        );
        self.security_changed_for(&[user_id]).await;
        self.forget_user_sessions(user_id).await
    }

    /// The epoch already ended the sessions; this clears them from the lists.
    async fn forget_user_sessions(&self, user_id: &str) -> StoreResult<()> {
        execute!(
            self,
            "delete from user_sessions where user_id = $1",
            user_id,
        )?;
        Ok(())
    }
}

impl Store {
    /// Deletes the user; their roles, factors, links, consents and tokens go with them
    /// (foreign keys cascade).
    pub async fn delete_user(&self, user_id: &str, event: Option<NewEvent>) -> StoreResult<bool> {
        let removed = execute_with_events!(
            self,
            event.as_slice(),
            "delete from users where id = $1",
            user_id
        );
        self.security_changed_for(&[user_id]).await;
        Ok(removed == 1)
    }
}
