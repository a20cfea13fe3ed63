//! Webhook endpoints: where events are posted, with their sealed signing secrets.

use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, execute, on_pool};

/// One endpoint as stored. `events` is `' a b '` or `''` for every type.
#[derive(Clone, Debug, FromRow)]
pub struct WebhookEndpointRow {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, url, description, events, secret, previous_secret, previous_secret_until, created_at";

impl Store {
    pub async fn create_webhook_endpoint(&self, row: &WebhookEndpointRow) -> StoreResult<()> {
        execute!(
            self,
            "insert into webhook_endpoints (id, url, description, events, secret, created_at) \
             values ($1, $2, $3, $4, $5, $6)",
            &row.id,
            &row.url,
            &row.description,
            &row.events,
            &row.secret,
            row.created_at,
        )?;
        Ok(())
    }

    pub async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpointRow>> {
        let sql = format!("select {COLUMNS} from webhook_endpoints order by created_at, id");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, WebhookEndpointRow>(&sql)
                .fetch_all(pool)
                .await
        })?)
    }

    pub async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpointRow>> {
        let sql = format!("select {COLUMNS} from webhook_endpoints where id = $1");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, WebhookEndpointRow>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Removes an endpoint and what was queued for it. False when there was none.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("delete from deliveries where target = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("delete from webhook_endpoints where id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, StoreError>(deleted > 0)
        })
    }

    /// A new signing secret; the current one becomes the previous, valid until `until`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        sealed: &str,
        until: i64,
    ) -> StoreResult<bool> {
        let changed = execute!(
            self,
            "update webhook_endpoints set previous_secret = secret, previous_secret_until = $1, \
             secret = $2 where id = $3",
            until,
            sealed,
            id,
        )?;
        Ok(changed > 0)
    }
}
