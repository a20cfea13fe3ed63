//! Changes over Redis pub/sub, on two connections of their own (a subscribed connection can
//! run nothing else).

use tokio::sync::broadcast::error::RecvError;
use tower_sessions_redis_store::fred::prelude::Client;
use tower_sessions_redis_store::fred::prelude::{
    ClientLike, Config, EventInterface, PubsubInterface, ReconnectPolicy,
};

use super::Changes;

pub struct Bus {
    url: String,
    channel: String,
    publisher: Client,
}

fn client(url: &str) -> anyhow::Result<Client> {
    let config = Config::from_url(url)?;
    // Retry for ever, from 100 ms up to 5 s apart.
    let policy = ReconnectPolicy::new_exponential(0, 100, 5_000, 2);
    Ok(Client::new(config, None, None, Some(policy)))
}

impl Bus {
    pub async fn connect(url: &str, channel: String) -> anyhow::Result<Self> {
        let publisher = client(url)?;
        publisher.init().await?;
        Ok(Self {
            url: url.to_string(),
            channel,
            publisher,
        })
    }

    pub async fn publish(&self, message: &str) -> anyhow::Result<()> {
        let _receivers: i64 = self.publisher.publish(&self.channel, message).await?;
        Ok(())
    }

    /// Subscribes, and again after every reconnect, treating everything as changed then
    /// (messages published meanwhile are gone).
    pub async fn subscribe(
        &self,
        changes: Changes,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let subscriber = client(&self.url)?;
        let channel = self.channel.clone();
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        subscriber.init().await?;
        subscriber.subscribe(&channel).await?;
        let receiver = subscriber.clone();
        let listen = async move {
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => {
                            if let Some(payload) = message.value.as_string() {
                                changes.receive(&payload);
                            }
                        }
                        Err(RecvError::Lagged(_)) => changes.apply_all(),
                        Err(RecvError::Closed) => break,
                    },
                    reconnect = reconnects.recv() => {
                        if matches!(reconnect, Err(RecvError::Closed)) {
                            break;
                        }
                        tracing::warn!("change bus: reconnected to Redis");
                        if let Err(e) = receiver.subscribe(&channel).await {
                            tracing::warn!(error = %e, "change bus: cannot subscribe on Redis");
                        }
                        changes.apply_all();
                    }
                }
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                () = listen => {}
                () = until => {}
            }
            let _ = subscriber.quit().await;
        });
        Ok(())
    }

    /// Closes the publishing connection.
    pub async fn close(&self) {
        let _ = self.publisher.quit().await;
    }
}
