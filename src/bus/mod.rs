//! The change bus: a write on one node that can end tokens, change a client or rotate a key
//! tells every other node at once, so their caches do not keep serving the old answer.
//!
//! Each cache keeps a generation per kind of change (`Changes`); a write moves it locally and
//! publishes the change; each node moves its own generation when the message arrives. Redis
//! pub/sub carries it when Redis is configured, Postgres `LISTEN/NOTIFY` otherwise; SQLite is a
//! single process and needs no transport. Messages can be lost (a reconnect), so the caches keep
//! their short lifetimes as the fallback, and a node that lost its subscription treats
//! everything as changed.
//!
//! Redis and `NOTIFY` stay in one region; on Postgres every change is also written to the
//! primary's change log, which every node follows on its region's replica (`log`).

mod log;
mod postgres;
mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::config::Secret;
use crate::store::{Db, Store};

/// The channel of one deployment: nodes on one database share it, and another deployment on
/// the same Redis does not hear it.
fn channel(deployment: &str) -> String {
    format!("portcullis_changes_{deployment}")
}

/// What changed; each kind drops one cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Something that can end an access token or a session: a revocation, a family end, a
    /// disabled or deleted user, a new session epoch, a consent taken back.
    Tokens,
    /// A client was created, changed or deleted, or got a new secret.
    Clients,
    /// A signing key was added or retired.
    Keys,
}

const ALL: [Change; 3] = [Change::Tokens, Change::Clients, Change::Keys];

/// One message on the wire: the change and the process that made it (which has applied it).
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    from: String,
    change: Change,
}

enum Outgoing {
    Publish(Change),
    Flush(oneshot::Sender<()>),
}

/// The generations the caches compare, and the way out to other nodes. One per `Store`
/// instance, so two servers in one process (the tests) do not share it.
#[derive(Clone, Debug, Default)]
pub struct Changes(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    generations: [AtomicU64; 3],
    keys_changed: Notify,
    outbox: OnceLock<mpsc::UnboundedSender<Outgoing>>,
    /// This process's id on the bus, so it skips its own messages.
    origin: OnceLock<String>,
}

fn index(change: Change) -> usize {
    match change {
        Change::Tokens => 0,
        Change::Clients => 1,
        Change::Keys => 2,
    }
}

impl Changes {
    /// Moves with every change of this kind, made here or on another node.
    pub fn generation(&self, change: Change) -> u64 {
        self.0.generations[index(change)].load(Ordering::Acquire)
    }

    /// Applies a change made by this process and tells the other nodes.
    pub fn publish(&self, change: Change) {
        self.apply(change);
        if let Some(outbox) = self.0.outbox.get() {
            // The receiver lives as long as the runtime; a closed one means shutdown.
            let _ = outbox.send(Outgoing::Publish(change));
        }
    }

    /// Completes when a key change arrives (from here or elsewhere).
    pub async fn keys_changed(&self) {
        self.0.keys_changed.notified().await;
    }

    /// Waits until every change published so far has gone out (the CLI, before it exits).
    pub async fn flush(&self) {
        let Some(outbox) = self.0.outbox.get() else {
            return;
        };
        let (done, sent) = oneshot::channel();
        if outbox.send(Outgoing::Flush(done)).is_ok() {
            let _ = sent.await;
        }
    }

    fn apply(&self, change: Change) {
        self.0.generations[index(change)].fetch_add(1, Ordering::AcqRel);
        if change == Change::Keys {
            // One waiter (the key reloader); a change during its reload leaves a permit.
            self.0.keys_changed.notify_one();
        }
    }

    /// After a lost subscription: messages may have been missed, so every cache starts over.
    fn apply_all(&self) {
        for change in ALL {
            self.apply(change);
        }
    }

    fn receive(&self, payload: &str) {
        match serde_json::from_str::<Message>(payload) {
            Ok(message) if Some(&message.from) == self.0.origin.get() => {}
            Ok(message) => self.apply(message.change),
            Err(e) => tracing::warn!(error = %e, "ignored a malformed change-bus message"),
        }
    }

    fn origin(&self) -> &str {
        self.0
            .origin
            .get_or_init(|| uuid::Uuid::now_v7().simple().to_string())
    }

    fn message(&self, change: Change) -> String {
        serde_json::json!({ "from": self.origin(), "change": change }).to_string()
    }
}

/// How changes travel between the nodes of one deployment.
enum Transport {
    Redis(redis::Bus),
    Postgres(postgres::Bus),
}

/// Whether this process also listens (a server) or only publishes (the CLI).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Cli,
}

/// A connected bus: its transport's name (for the logs), and the way to end its tasks.
pub struct Connection {
    pub name: &'static str,
    stop: watch::Sender<bool>,
}

impl Connection {
    /// Ends the bus's tasks and closes their connections (a server that stopped serving; the
    /// tests start many in one process).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// Completes once `stop` is called; never when the `Connection` is dropped without it (the
/// CLI drops it and keeps publishing until it exits).
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Connects the store's changes to the other nodes of `deployment` (an id the nodes of one
/// database share): Redis when configured, else Postgres; nothing on SQLite without Redis (one
/// process).
pub async fn connect(
    store: &Store,
    redis_url: Option<&Secret>,
    deployment: &str,
    role: Role,
) -> anyhow::Result<Connection> {
    let channel = channel(deployment);
    let transport = match (redis_url, &store.db) {
        (Some(url), _) => Transport::Redis(redis::Bus::connect(url.expose(), channel).await?),
        (None, Db::Postgres(pool)) => {
            Transport::Postgres(postgres::Bus::new(pool.clone(), channel))
        }
        (None, Db::Sqlite(_)) => {
            return Ok(Connection {
                name: "none (one process)",
                stop: watch::Sender::new(false),
            });
        }
    };
    let changes = store.changes().clone();
    let (outbox, queue) = mpsc::unbounded_channel();
    if changes.0.outbox.set(outbox).is_err() {
        anyhow::bail!("the change bus is already connected");
    }
    let name = match &transport {
        Transport::Redis(_) => "redis",
        Transport::Postgres(_) => "postgres",
    };
    let stop = watch::Sender::new(false);
    if role == Role::Server {
        let (changes, until) = (changes.clone(), stopped(stop.subscribe()));
        match &transport {
            Transport::Redis(bus) => bus.subscribe(changes, until).await?,
            Transport::Postgres(bus) => bus.subscribe(changes, until).await?,
        }
    }
    // Other regions hear of changes through the primary's change log (see `log`).
    let change_log = matches!(store.db, Db::Postgres(_)).then(|| store.clone());
    if role == Role::Server
        && let Some(store) = &change_log
    {
        let until = stopped(stop.subscribe());
        tokio::spawn(log::follow(store.clone(), changes.clone(), until));
    }
    let until = stopped(stop.subscribe());
    tokio::spawn(async move {
        tokio::select! {
            () = send_all(&transport, change_log.as_ref(), &changes, queue) => {}
            () = until => {}
        }
        if let Transport::Redis(bus) = &transport {
            bus.close().await;
        }
    });
    Ok(Connection { name, stop })
}

/// Publishes queued changes in order. A failed publish is logged: the caches' lifetimes bound
/// how long the other nodes keep the old answer.
async fn send_all(
    transport: &Transport,
    change_log: Option<&Store>,
    changes: &Changes,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(outgoing) = queue.recv().await {
        match outgoing {
            Outgoing::Publish(change) => {
                let message = changes.message(change);
                let sent = match transport {
                    Transport::Redis(bus) => bus.publish(&message).await,
                    Transport::Postgres(bus) => bus.publish(&message).await.map_err(Into::into),
                };
                if let Err(e) = sent {
                    tracing::warn!(
                        error = %e,
                        ?change,
                        "could not publish a change to the other nodes; they see it when \
                         their caches expire"
                    );
                }
                if let Some(store) = change_log {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    log::record(store, changes, change, now).await;
                }
            }
            Outgoing::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
