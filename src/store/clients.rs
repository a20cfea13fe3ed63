//! `oauth_clients`: registered relying apps.

use sqlx::FromRow;

use super::{
    Store, StoreError, StoreResult, execute_with_events, on_pool, read_nearby, write_events,
};
use crate::events::NewEvent;

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    /// RFC 8707 resource URIs the client may ask tokens for, space-separated.
    pub resources: String,
    pub skip_consent: bool,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! client_select {
    () => {
        "select id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, \
         scopes, resources, skip_consent, access_token_ttl, refresh_token_ttl, created_at, \
         updated_at from oauth_clients"
    };
}

impl Store {
    pub async fn create_client(
        &self,
        client: &ClientRow,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "insert into oauth_clients (id, name, secret_hash, redirect_uris, \
             post_logout_redirect_uris, grant_types, scopes, resources, skip_consent, \
             access_token_ttl, refresh_token_ttl, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &client.id,
            &client.name,
            &client.secret_hash,
            &client.redirect_uris,
            &client.post_logout_redirect_uris,
            &client.grant_types,
            &client.scopes,
            &client.resources,
            client.skip_consent,
            client.access_token_ttl,
            client.refresh_token_ttl,
            client.created_at,
            client.updated_at,
        );
        self.clients_changed();
        Ok(())
    }

    /// A client, from the region's replica when it has it (a client just created there may
    /// not be yet: then the primary).
    pub async fn find_client(&self, id: &str) -> StoreResult<Option<ClientRow>> {
        Ok(read_nearby!(self, &[id], Option::is_some, |pool| {
            sqlx::query_as::<_, ClientRow>(concat!(client_select!(), " where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    pub async fn list_clients(&self) -> StoreResult<Vec<ClientRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, ClientRow>(concat!(client_select!(), " order by created_at, id"))
                .fetch_all(pool)
                .await
        })?)
    }

    /// Deletes a client with its consents; its refresh tokens are revoked in the same
    /// transaction, so nothing it was given outlives it. True when a client was deleted.
    pub async fn delete_client(
        &self,
        id: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let events = event.as_slice();
        let deleted = on_pool!(self, |pool| {
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
            if deleted == 1 {
                write_events!(tx, events);
            }
            tx.commit().await?;
            Ok::<_, StoreError>(deleted == 1)
        })?;
        if deleted && !events.is_empty() {
            self.outbox_written();
        }
        self.wrote(&[id]).await;
        self.clients_changed();
        self.security_changed();
        Ok(deleted)
    }

    /// Saves a client's settings; its secret and creation time stay. False when it is gone.
    pub async fn update_client(
        &self,
        row: &ClientRow,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let updated = execute_with_events!(
            self,
            event.as_slice(),
            "update oauth_clients set name = $1, redirect_uris = $2, \
             post_logout_redirect_uris = $3, grant_types = $4, scopes = $5, resources = $6, \
             skip_consent = $7, access_token_ttl = $8, refresh_token_ttl = $9, updated_at = $10 \
             where id = $11",
            &row.name,
            &row.redirect_uris,
            &row.post_logout_redirect_uris,
            &row.grant_types,
            &row.scopes,
            &row.resources,
            row.skip_consent,
            row.access_token_ttl,
            row.refresh_token_ttl,
            row.updated_at,
            &row.id,
        );
        self.wrote(&[&row.id]).await;
        self.clients_changed();
        // Turning consent on ends tokens that rest on no consent.
        self.security_changed();
        Ok(updated == 1)
    }

    /// True when the client exists (and now has the new secret).
    pub async fn set_client_secret_hash(
        &self,
        id: &str,
        hash: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let updated = execute_with_events!(
            self,
            event.as_slice(),
            "update oauth_clients set secret_hash = $1, updated_at = $2 \
             where id = $3 and secret_hash is not null",
            hash,
            now,
            id,
        );
        self.wrote(&[id]).await;
        self.clients_changed();
        Ok(updated == 1)
    }
}
