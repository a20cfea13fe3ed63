//! Changes over Postgres `LISTEN/NOTIFY`: no other service needed. A notification is delivered
//! to every session listening when the sending transaction commits.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::Changes;

pub struct Bus {
    pool: PgPool,
    channel: String,
}

impl Bus {
    pub fn new(pool: PgPool, channel: String) -> Self {
        Self { pool, channel }
    }

    pub async fn publish(&self, message: &str) -> Result<(), sqlx::Error> {
        sqlx::query("select pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(message)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Listens on a connection of its own; when it is lost, reconnects and treats everything
    /// as changed (notifications sent meanwhile are gone).
    pub async fn subscribe(
        &self,
        changes: Changes,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.channel).await?;
        let listen = async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => changes.receive(notification.payload()),
                    // The connection closed; the next call reconnects and listens again.
                    Ok(None) => {
                        tracing::warn!("change bus: lost the Postgres connection; reconnecting");
                        changes.apply_all();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change bus: cannot listen on Postgres");
                        changes.apply_all();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        };
        // Dropping the listener closes its connection.
        tokio::spawn(async move {
            tokio::select! {
                () = listen => {}
                () = until => {}
            }
        });
        Ok(())
    }
}
