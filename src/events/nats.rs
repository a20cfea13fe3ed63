//! The NATS JetStream sink: each event is published to `portcullis.events.<type>` with its
//! CloudEvent id as `Nats-Msg-Id`, so JetStream drops a redelivery inside its duplicate window;
//! a delivery counts only when the stream acknowledged it.

use async_nats::jetstream;
use tokio::sync::OnceCell;

/// The stream the events land in (created when missing).
pub const STREAM: &str = "PORTCULLIS_EVENTS";
pub const SUBJECT_PREFIX: &str = "portcullis.events.";

/// A lazily connected JetStream context: a NATS server that is down at start-up delays the
/// events, not the server.
pub struct NatsSink {
    url: String,
    context: OnceCell<jetstream::Context>,
}

impl NatsSink {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            context: OnceCell::new(),
        }
    }

    async fn context(&self) -> Result<&jetstream::Context, String> {
        self.context
            .get_or_try_init(|| async {
                let client = async_nats::ConnectOptions::new()
                    .name("portcullis")
                    .connection_timeout(std::time::Duration::from_secs(5))
                    .connect(self.url.as_str())
                    .await
                    .map_err(|e| format!("cannot connect to NATS: {e}"))?;
                let context = jetstream::new(client);
                context
                    .get_or_create_stream(jetstream::stream::Config {
                        name: STREAM.to_string(),
                        subjects: vec![format!("{SUBJECT_PREFIX}>")],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("cannot create the JetStream stream {STREAM}: {e}"))?;
                Ok(context)
            })
            .await
    }

    /// Publishes one event and waits for the stream's acknowledgement.
    pub async fn publish(
        &self,
        event_type: &str,
        event_id: &str,
        body: &str,
    ) -> Result<(), String> {
        let context = self.context().await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event_id);
        headers.insert("content-type", "application/cloudevents+json");
        let subject = format!("{SUBJECT_PREFIX}{event_type}");
        let ack = context
            .publish_with_headers(subject, headers, body.to_string().into())
            .await
            .map_err(|e| format!("cannot publish to NATS: {e}"))?;
        ack.await
            .map_err(|e| format!("JetStream did not acknowledge: {e}"))?;
        Ok(())
    }
}
