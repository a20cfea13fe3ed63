//! Relying-app clients and token signing keys.

use sqlx::FromRow;

use super::{Store, StoreResult, on_pool};

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
    pub async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("delete from oauth_clients where id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(deleted == 1)
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
