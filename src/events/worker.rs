//! The delivery worker, one per node: claims due deliveries (leases, `FOR UPDATE SKIP LOCKED`
//! on Postgres), delivers them concurrently, and retries failures with exponential backoff and
//! jitter until the maximum age, after which a delivery is marked failed for an admin to see.
//! A worker that dies mid-delivery leaves its lease to expire; the event goes out again with the
//! same id (at least once).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::app::AppState;
use crate::store::{Attempt, ClaimedDelivery, NATS_TARGET};

use super::nats::NatsSink;
use super::webhooks;

/// How long a claim holds: longer than a webhook may take.
const LEASE: Duration = Duration::from_secs(30);
/// Deliveries in flight at once on one node.
const MAX_IN_FLIGHT: i64 = 64;
/// How often the queue is looked at when this node wrote nothing (other nodes' events, retries).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 600;

/// Where deliveries go.
struct Sinks {
    http: reqwest::Client,
    allow_private: bool,
    nats: Option<NatsSink>,
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
        // Claims as long as there is room, without waiting for the deliveries in flight: a
        // slow receiver holds up only its own subjects.
        let mut in_flight = JoinSet::new();
        loop {
            let room = MAX_IN_FLIGHT - in_flight.len() as i64;
            let claimed = if room > 0 {
                claim(&state, room).await
            } else {
                Vec::new()
            };
            let idle = claimed.is_empty();
            for delivery in claimed {
                let state = state.clone();
                let sinks = sinks.clone();
                in_flight.spawn(async move { deliver(&state, &sinks, delivery).await });
            }
            if idle {
                tokio::select! {
                    () = state.store.outbox_wait() => {}
                    () = tokio::time::sleep(POLL_EVERY) => {}
                    Some(_) = in_flight.join_next() => {}
                }
            }
            while in_flight.try_join_next().is_some() {}
        }
    }))
}

/// Leases up to `limit` due deliveries.
async fn claim(state: &AppState, limit: i64) -> Vec<ClaimedDelivery> {
    let now = state.clock.now();
    match state
        .store
        .claim_deliveries(state.node.name(), now, now + LEASE.as_secs() as i64, limit)
        .await
    {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim event deliveries");
            Vec::new()
        }
    }
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
            let max_age = state.config.events.max_age.as_secs() as i64;
            let retry_at =
                (now - delivery.created_at < max_age).then(|| now + backoff(delivery.attempts));
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

/// Seconds before the next attempt after `attempts` earlier ones: 1, 2, 4 … up to 10 minutes,
/// each between half and all of that (jitter, so receivers that come back are not hit by every
/// retry at once).
fn backoff(attempts: i64) -> i64 {
    let full = 1i64
        .checked_shl(attempts.clamp(0, 30) as u32)
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS);
    let half = full / 2;
    (half + rand::random_range(0..=full - half)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes_with_jitter() {
        for _ in 0..100 {
            assert!((1..=1).contains(&backoff(0)));
            assert!((1..=2).contains(&backoff(1)));
            assert!((4..=8).contains(&backoff(3)));
            assert!((300..=600).contains(&backoff(20)));
            assert!((300..=600).contains(&backoff(1000)));
        }
    }
}
