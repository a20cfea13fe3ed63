//! `auth_codes`: authorization codes (stored as hashes) and what they were exchanged for.

use sqlx::FromRow;

use super::{Store, StoreResult, execute, on_pool};

#[derive(Clone, Debug, FromRow)]
pub struct AuthCodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    /// RFC 8707 resources asked for at authorization, space-separated.
    pub resources: String,
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
        execute!(
            self,
            "insert into auth_codes (code_hash, client_id, user_id, redirect_uri, scope, \
             resources, nonce, code_challenge, auth_time, amr, created_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &code.code_hash,
            &code.client_id,
            &code.user_id,
            &code.redirect_uri,
            &code.scope,
            &code.resources,
            &code.nonce,
            &code.code_challenge,
            code.auth_time,
            &code.amr,
            code.created_at,
            code.expires_at,
        )?;
        Ok(())
    }

    pub async fn find_auth_code(&self, code_hash: &str) -> StoreResult<Option<AuthCodeRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, AuthCodeRow>(
                "select code_hash, client_id, user_id, redirect_uri, scope, resources, nonce, \
                 code_challenge, auth_time, amr, created_at, expires_at, used_at \
                 from auth_codes where code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Uses up a code issued to `client_id`, in one statement: its row, or `None` when it is
    /// unknown, another client's, or was used before (a replay, or a lost race).
    pub async fn take_auth_code(
        &self,
        code_hash: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<AuthCodeRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, AuthCodeRow>(
                "update auth_codes set used_at = $1 \
                 where code_hash = $2 and client_id = $3 and used_at is null \
                 returning code_hash, client_id, user_id, redirect_uri, scope, resources, nonce, \
                 code_challenge, auth_time, amr, created_at, expires_at, used_at",
            )
            .bind(now)
            .bind(code_hash)
            .bind(client_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Notes a second redemption of a code, so that the first ends its tokens too.
    pub async fn mark_code_replayed(&self, code_hash: &str, now: i64) -> StoreResult<()> {
        execute!(
            self,
            "update auth_codes set replayed_at = $1 where code_hash = $2 and replayed_at is null",
            now,
            code_hash,
        )?;
        Ok(())
    }

    /// Notes the access token a code was exchanged for; `true` when the code was marked as
    /// replayed meanwhile (read in the same statement, so no mark slips between).
    pub async fn set_code_access_jti(&self, code_hash: &str, jti: &str) -> StoreResult<bool> {
        let replayed = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, Option<i64>>(
                "update auth_codes set access_jti = $1 where code_hash = $2 returning replayed_at",
            )
            .bind(jti)
            .bind(code_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(replayed.flatten().is_some())
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

    /// Forgets codes that expired before `before`: a replay of one is refused as unknown, and
    /// whatever it was exchanged for has expired as well (`before` is a day back).
    pub async fn prune_auth_codes(&self, before: i64) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "delete from auth_codes where expires_at < $1",
            before
        )?)
    }
}
