//! Mail through the outbox: a request queues its mail (sealed with the server key, since it
//! holds one-time links and codes) and answers at once; this node's mail worker sends it with
//! retries, so a slow or broken SMTP server slows no page and the answer's time tells nothing
//! about whether an address has an account. A mail that is finally given up is listed for
//! admins (`/admin`).

use crate::app::AppState;
use crate::config::SecretKey;
use crate::crypto;
use crate::events::queue::{self, Queue};
use crate::store::{Attempt, ClaimedMail, QueuedMail, StoreResult};

use super::Mail;

fn seal_context(recipient: &str) -> String {
    format!("mail:{recipient}")
}

/// The mail ready to be written (in a transaction, or with `queue`).
pub fn sealed(key: &SecretKey, to: &str, mail: &Mail, now: i64) -> QueuedMail {
    // A `Mail` is strings only: it always serialises.
    let body = serde_json::to_vec(mail).unwrap_or_default();
    QueuedMail {
        recipient: to.to_string(),
        subject: mail.subject.clone(),
        sealed_body: crypto::seal(key, &seal_context(to), &body),
        now,
    }
}

/// Queues one mail; the worker sends it.
pub async fn queue(state: &AppState, to: &str, mail: &Mail) -> StoreResult<()> {
    let queued = sealed(&state.config.secret_key, to, mail, state.clock.now());
    state.store.queue_mail(&queued).await
}

#[derive(Clone)]
struct Outgoing {
    state: AppState,
}

impl Queue for Outgoing {
    type Item = ClaimedMail;
    /// An SMTP server takes only so many connections from one client.
    const MAX_IN_FLIGHT: i64 = 8;

    async fn claim(&self, limit: i64) -> Vec<ClaimedMail> {
        let state = &self.state;
        let now = state.clock.now();
        let until = now + queue::LEASE.as_secs() as i64;
        match state
            .store
            .claim_mail(state.node.name(), now, until, limit)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim mail to send");
                Vec::new()
            }
        }
    }

    async fn handle(&self, item: ClaimedMail) {
        let state = &self.state;
        let sent = match open(&state.config.secret_key, &item) {
            Ok(mail) => state
                .mailer
                .send(&item.recipient, &mail)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let now = state.clock.now();
        let attempt = match &sent {
            Ok(()) => Attempt::Delivered { status: None },
            Err(error) => {
                let retry_at = queue::retry_at(
                    now,
                    item.created_at,
                    item.attempts,
                    state.config.events.max_age,
                );
                match retry_at {
                    Some(_) => tracing::warn!(error, "a mail could not be sent; will retry"),
                    None => {
                        tracing::error!(error, "gave up sending a mail: it is past the maximum age")
                    }
                }
                Attempt::Failed {
                    status: None,
                    error,
                    retry_at,
                }
            }
        };
        if let Err(e) = state.store.finish_mail(item.id, attempt, now).await {
            tracing::warn!(error = %e, "could not record a mail attempt");
        }
    }

    async fn written(&self) {
        self.state.store.mail_wait().await;
    }
}

fn open(key: &SecretKey, item: &ClaimedMail) -> Result<Mail, String> {
    let sealed = item
        .sealed_body
        .as_deref()
        .ok_or_else(|| "the message was erased".to_string())?;
    let bytes =
        crypto::open(key, &seal_context(&item.recipient), sealed).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("damaged message: {e}"))
}

/// Starts this node's mail worker; it runs until the task is aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = state.store.release_mail_leases(state.node.name()).await {
            tracing::warn!(error = %e, "could not release the old mail leases");
        }
        queue::run(Outgoing { state }).await;
    })
}
