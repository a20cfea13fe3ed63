//! The delivery worker, one per node: claims due deliveries (leases, `FOR UPDATE SKIP LOCKED`
//! on Postgres), delivers them concurrently, and retries failures with exponential backoff and
//! jitter until the maximum age, after which a delivery is marked failed for an admin to see.
//! A worker that dies mid-delivery leaves its lease to expire; the event goes out again with the
//! same id (at least once).

use std::sync::Arc;

use crate::app::AppState;
use crate::store::{Attempt, ClaimedDelivery, NATS_TARGET};

use super::nats::NatsSink;
use super::queue::{self, Queue};
use super::webhooks;

/// Where deliveries go.
struct Sinks {
    http: reqwest::Client,
    allow_private: bool,
    nats: Option<NatsSink>,
}

/// The deliveries of this node's worker.
#[derive(Clone)]
struct Deliveries {
    state: AppState,
    sinks: Arc<Sinks>,
}

impl Queue for Deliveries {
    type Item = ClaimedDelivery;
    const MAX_IN_FLIGHT: i64 = 64;

    async fn claim(&self, limit: i64) -> Vec<ClaimedDelivery> {
        let state = &self.state;
        let now = state.clock.now();
        let until = now + queue::LEASE.as_secs() as i64;
        match state
            .store
            .claim_deliveries(state.node.name(), now, until, limit)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim event deliveries");
                Vec::new()
            }
        }
    }

    async fn handle(&self, delivery: ClaimedDelivery) {
        deliver(&self.state, &self.sinks, delivery).await;
    }

    async fn written(&self) {
        self.state.store.outbox_wait().await;
    }
}

/// Starts the worker. It runs until the task is aborted.
pub fn spawn(state: AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let settings = &state.config.events;
    let sinks = Arc::new(Sinks {
        http: webhooks::http_client(settings.webhook_allow_private)?,
        allow_private: settings.webhook_allow_private,
        nats: settings
            .nats_url
            .as_ref()
            .map(|url| NatsSink::new(url.expose())),
    });
    Ok(tokio::spawn(async move {
        match state.store.release_delivery_leases(state.node.name()).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(
                released,
                "delivering again what this node held when it stopped"
            ),
            Err(e) => tracing::warn!(error = %e, "could not release the old delivery leases"),
        }
        queue::run(Deliveries { state, sinks }).await;
    }))
}

async fn deliver(state: &AppState, sinks: &Sinks, delivery: ClaimedDelivery) {
    let span = tracing::info_span!(
        "event.deliver",
        event.id = %delivery.event_id,
        event.type = %delivery.event_type,
        target = %delivery.target,
    );
    tracing::Instrument::instrument(deliver_in_span(state, sinks, delivery), span).await;
}

async fn deliver_in_span(state: &AppState, sinks: &Sinks, delivery: ClaimedDelivery) {
    let sink = if delivery.target == NATS_TARGET {
        "nats"
    } else {
        "webhook"
    };
    let (status, error) = attempt(state, sinks, &delivery).await;
    let now = state.clock.now();
    let outcome = match &error {
        None => Attempt::Delivered { status },
        Some(error) => {
            let retry_at = queue::retry_at(
                now,
                delivery.created_at,
                delivery.attempts,
                state.config.events.max_age,
            );
            if retry_at.is_none() {
                tracing::warn!(
                    error,
                    "gave up delivering an event: it is past the maximum age"
                );
            } else {
                tracing::info!(
                    error,
                    attempts = delivery.attempts + 1,
                    "event delivery failed; will retry"
                );
            }
            Attempt::Failed {
                status,
                error,
                retry_at,
            }
        }
    };
    let label = match &outcome {
        Attempt::Delivered { .. } => "delivered",
        Attempt::Failed {
            retry_at: Some(_), ..
        } => "retry",
        Attempt::Failed { retry_at: None, .. } => "failed",
    };
    state.metrics.event_delivery(sink, label);
    if let Err(e) = state.store.finish_attempt(delivery.id, outcome, now).await {
        // The lease runs out and the event goes out again: at least once.
        tracing::warn!(error = %e, "could not record a delivery attempt");
    }
}

/// One attempt: the receiver's status, and the error when it was not delivered.
async fn attempt(
    state: &AppState,
    sinks: &Sinks,
    delivery: &ClaimedDelivery,
) -> (Option<i64>, Option<String>) {
    if delivery.target == NATS_TARGET {
        let Some(nats) = &sinks.nats else {
            return (
                None,
                Some("PORTCULLIS_NATS_URL is not set on this node".into()),
            );
        };
        let published = nats
            .publish(&delivery.event_type, &delivery.event_id, &delivery.document)
            .await;
        return (None, published.err());
    }
    let (Some(url), Some(secret)) = (&delivery.url, &delivery.secret) else {
        return (None, Some("the endpoint was removed".into()));
    };
    let now = state.clock.now();
    let previous = delivery
        .previous_secret
        .as_deref()
        .zip(delivery.previous_secret_until);
    let secrets = match webhooks::signing_secrets(
        &state.config.secret_key,
        &delivery.target,
        secret,
        previous,
        now,
    ) {
        Ok(secrets) => secrets,
        Err(e) => return (None, Some(e.to_string())),
    };
    let answer = webhooks::post(
        &sinks.http,
        url,
        sinks.allow_private,
        &secrets,
        &delivery.event_id,
        &delivery.document,
    )
    .await;
    (answer.status.map(i64::from), answer.error)
}
