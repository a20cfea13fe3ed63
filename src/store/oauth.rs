//! Relying-app clients and token signing keys.

use sqlx::FromRow;

use super::users::{UserRow, qualified_user_fields};
use super::{Store, StoreResult, User, on_pool};

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub skip_consent: bool,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key_enc: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

const CLIENT_COLUMNS: &str = "select id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     grant_types, scopes, skip_consent, access_token_ttl, refresh_token_ttl, created_at, updated_at \
     from oauth_clients";

impl Store {
    pub async fn create_client(&self, client: &ClientRow) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "insert into oauth_clients (id, name, secret_hash, redirect_uris, \
                 post_logout_redirect_uris, grant_types, scopes, skip_consent, access_token_ttl, \
                 refresh_token_ttl, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&client.id)
            .bind(&client.name)
            .bind(&client.secret_hash)
            .bind(&client.redirect_uris)
            .bind(&client.post_logout_redirect_uris)
            .bind(&client.grant_types)
            .bind(&client.scopes)
            .bind(client.skip_consent)
            .bind(client.access_token_ttl)
            .bind(client.refresh_token_ttl)
            .bind(client.created_at)
            .bind(client.updated_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn find_client(&self, id: &str) -> StoreResult<Option<ClientRow>> {
        let sql = format!("{CLIENT_COLUMNS} where id = $1");
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, ClientRow>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    pub async fn list_clients(&self) -> StoreResult<Vec<ClientRow>> {
        let sql = format!("{CLIENT_COLUMNS} order by created_at, id");
        let rows = on_pool!(self, |pool| sqlx::query_as::<_, ClientRow>(&sql)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// True when a client was deleted.
    /// Deletes a client with its consents; its refresh tokens are revoked in the same
    /// transaction, so nothing it was given outlives it.
    pub async fn delete_client(&self, id: &str, now: i64) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("delete from consents where client_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 where client_id = $2 and revoked_at is null",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let deleted = sqlx::query("delete from oauth_clients where id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, super::StoreError>(deleted == 1)
        })
    }

    /// Saves a client's settings; its secret and creation time stay. False when it is gone.
    pub async fn update_client(&self, row: &ClientRow) -> StoreResult<bool> {
        let updated = on_pool!(self, |pool| {
            sqlx::query(
                "update oauth_clients set name = $1, redirect_uris = $2, \
                 post_logout_redirect_uris = $3, grant_types = $4, scopes = $5, skip_consent = $6, \
                 access_token_ttl = $7, refresh_token_ttl = $8, updated_at = $9 where id = $10",
            )
            .bind(&row.name)
            .bind(&row.redirect_uris)
            .bind(&row.post_logout_redirect_uris)
            .bind(&row.grant_types)
            .bind(&row.scopes)
            .bind(row.skip_consent)
            .bind(row.access_token_ttl)
            .bind(row.refresh_token_ttl)
            .bind(row.updated_at)
            .bind(&row.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// True when the client exists (and now has the new secret).
    pub async fn set_client_secret_hash(
        &self,
        id: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let updated = on_pool!(self, |pool| {
            sqlx::query("update oauth_clients set secret_hash = $1, updated_at = $2 where id = $3 and secret_hash is not null")
                .bind(hash)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(updated == 1)
    }

    pub async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, SigningKeyRow>(
                "select kid, alg, private_key_enc, created_at, activates_at, retired_at \
                 from signing_keys order by activates_at, kid",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    pub async fn insert_signing_key(&self, key: &SigningKeyRow) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "insert into signing_keys (kid, alg, private_key_enc, created_at, activates_at, retired_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_key_enc)
            .bind(key.created_at)
            .bind(key.activates_at)
            .bind(key.retired_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Marks every older key of `alg` as retired from `at` (they stay published until the
    /// tokens they signed have expired).
    pub async fn retire_signing_keys(
        &self,
        alg: &str,
        except_kid: &str,
        at: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "update signing_keys set retired_at = $1 \
                 where alg = $2 and kid <> $3 and retired_at is null",
            )
            .bind(at)
            .bind(alg)
            .bind(except_kid)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct AuthCodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl Store {
    pub async fn insert_auth_code(&self, code: &AuthCodeRow) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "insert into auth_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce, \
                 code_challenge, auth_time, amr, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&code.code_hash)
            .bind(&code.client_id)
            .bind(&code.user_id)
            .bind(&code.redirect_uri)
            .bind(&code.scope)
            .bind(&code.nonce)
            .bind(&code.code_challenge)
            .bind(code.auth_time)
            .bind(&code.amr)
            .bind(code.created_at)
            .bind(code.expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn find_auth_code(&self, code_hash: &str) -> StoreResult<Option<AuthCodeRow>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, AuthCodeRow>(
                "select code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, \
                 auth_time, amr, created_at, expires_at, used_at from auth_codes where code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Uses a code up; false when it was already used (a replay, or a lost race).
    pub async fn use_auth_code(&self, code_hash: &str, now: i64) -> StoreResult<bool> {
        let updated = on_pool!(self, |pool| {
            sqlx::query(
                "update auth_codes set used_at = $1 where code_hash = $2 and used_at is null",
            )
            .bind(now)
            .bind(code_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(updated == 1)
    }

    pub async fn prune_auth_codes(&self, before: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("delete from auth_codes where expires_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The scopes a person already allowed this client, space-separated.
    pub async fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
        let scope = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "select scope from consents where user_id = $1 and client_id = $2",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(scope)
    }

    pub async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("delete from consents where user_id = $1 and client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("insert into consents (user_id, client_id, scope, granted_at) values ($1, $2, $3, $4)")
                .bind(user_id)
                .bind(client_id)
                .bind(scope)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, super::StoreError>(())
        })
    }

    pub async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("delete from consents where user_id = $1 and client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(deleted == 1)
    }

    /// (client id, client name, scope, granted at) for the account page.
    pub async fn consents_of(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(String, String, String, i64)>> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String, i64)>(
                "select c.client_id, coalesce(o.name, c.client_id), c.scope, c.granted_at \
                 from consents c left join oauth_clients o on o.id = c.client_id \
                 where c.user_id = $1 order by c.granted_at desc",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
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

impl Store {
    pub async fn set_code_access_jti(&self, code_hash: &str, jti: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("update auth_codes set access_jti = $1 where code_hash = $2")
                .bind(jti)
                .bind(code_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn code_access_jti(&self, code_hash: &str) -> StoreResult<Option<String>> {
        let jti = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, Option<String>>(
                "select access_jti from auth_codes where code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(jti.flatten())
    }

    pub async fn insert_refresh_token(&self, row: &RefreshTokenRow) -> StoreResult<()> {
        on_pool!(self, |pool| {
            bind_refresh_row!(sqlx::query(INSERT_REFRESH_TOKEN), row, None::<&str>)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<RefreshTokenRow>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, RefreshTokenRow>(&format!(
                "select {REFRESH_TOKEN_FIELDS} from refresh_tokens rt where token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// A refresh token with its holder, in one query: the refresh grant needs both.
    pub async fn find_refresh_token_and_holder(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(RefreshTokenRow, User)>> {
        let sql = format!(
            "select {REFRESH_TOKEN_FIELDS}, {}, {} from refresh_tokens rt \
             join users on users.id = rt.user_id where rt.token_hash = $1",
            qualified_user_fields(),
            self.roles_column()
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, RefreshHolderRow>(&sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| (row.token, row.user.into_user())))
    }

    /// Rotates a refresh token in one atomic statement: marks `old_hash` rotated and stores its
    /// successor `next` (when the grant gives one). False, with nothing stored, when the old token
    /// was already rotated or revoked (a reuse, or a lost race between two refreshes).
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        next: Option<&RefreshTokenRow>,
    ) -> StoreResult<bool> {
        let Some(row) = next else {
            let updated = on_pool!(self, |pool| {
                sqlx::query(
                    "update refresh_tokens set rotated_at = $1 \
                     where token_hash = $2 and rotated_at is null and revoked_at is null",
                )
                .bind(now)
                .bind(old_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
            return Ok(updated == 1);
        };
        // SQLite: the insert happens only while the parent is live, and a trigger marks the
        // parent rotated. Postgres: the update and the insert are one data-modifying CTE.
        let sql = match self {
            Store::Sqlite(_) => {
                "insert into refresh_tokens (token_hash, family_id, client_id, user_id, scope, \
                 auth_time, amr, session_epoch, code_hash, created_at, expires_at, parent_hash, \
                 ip, user_agent, family_created_at) \
                 select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
                 where exists (select 1 from refresh_tokens where token_hash = $12 \
                 and rotated_at is null and revoked_at is null)"
            }
            Store::Postgres(_) => {
                "with parent as (update refresh_tokens set rotated_at = $10 \
                 where token_hash = $12 and rotated_at is null and revoked_at is null \
                 returning token_hash) \
                 insert into refresh_tokens (token_hash, family_id, client_id, user_id, scope, \
                 auth_time, amr, session_epoch, code_hash, created_at, expires_at, parent_hash, \
                 ip, user_agent, family_created_at) \
                 select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, token_hash, $13, $14, $15 \
                 from parent"
            }
        };
        let inserted = on_pool!(self, |pool| {
            bind_refresh_row!(sqlx::query(sql), row, Some(old_hash))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    pub async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("update refresh_tokens set revoked_at = $1 where family_id = $2 and revoked_at is null")
                .bind(now)
                .bind(family_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        // First-party API access tokens end with their family.
        super::security_changed();
        Ok(())
    }

    pub async fn revoke_refresh_tokens_of_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 where family_id in \
                 (select family_id from refresh_tokens where code_hash = $2) and revoked_at is null",
            )
            .bind(now)
            .bind(code_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "insert into revoked_access_tokens (jti, expires_at) values ($1, $2) \
                 on conflict (jti) do nothing",
            )
            .bind(jti)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        super::security_changed();
        Ok(())
    }

    pub async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        let found = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>("select jti from revoked_access_tokens where jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await
        })?;
        Ok(found.is_some())
    }
}

impl Store {
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
                 and rt.expires_at > $2 order by rt.created_at desc",
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
        let revoked = on_pool!(self, |pool| {
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 \
                 where family_id = $2 and user_id = $3 and revoked_at is null",
            )
            .bind(now)
            .bind(family_id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        super::security_changed();
        Ok(revoked > 0)
    }

    /// Ends a person's refresh tokens for one client (when they take back consent).
    pub async fn revoke_refresh_tokens_for(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "update refresh_tokens set revoked_at = $1 \
                 where user_id = $2 and client_id = $3 and revoked_at is null",
            )
            .bind(now)
            .bind(user_id)
            .bind(client_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

/// A new family's first token: `$12` (the parent) is bound but empty, in the order
/// `bind_refresh_row!` binds, which the rotation statements share.
const INSERT_REFRESH_TOKEN: &str = "insert into refresh_tokens (token_hash, family_id, client_id, \
     user_id, scope, auth_time, amr, session_epoch, code_hash, created_at, expires_at, \
     parent_hash, ip, user_agent, family_created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15)";

/// Binds a refresh-token row as `$1`…`$15` (`$12` is the parent it rotates, if any), for the
/// insert and both backends' rotation statements.
macro_rules! bind_refresh_row {
    ($query:expr, $row:expr, $parent:expr) => {
        $query
            .bind(&$row.token_hash)
            .bind(&$row.family_id)
            .bind(&$row.client_id)
            .bind(&$row.user_id)
            .bind(&$row.scope)
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
use bind_refresh_row;

const REFRESH_TOKEN_FIELDS: &str = "rt.token_hash, rt.family_id, rt.client_id, rt.user_id, \
     rt.scope, rt.auth_time, rt.amr, rt.session_epoch as rt_session_epoch, rt.code_hash, \
     rt.created_at as rt_created_at, rt.expires_at, rt.rotated_at, rt.revoked_at, rt.ip, \
     rt.user_agent, rt.family_created_at";

#[derive(FromRow)]
struct RefreshHolderRow {
    #[sqlx(flatten)]
    token: RefreshTokenRow,
    #[sqlx(flatten)]
    user: UserRow,
}
