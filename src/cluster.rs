//! Running as one node of several on one database: the checks at start-up that catch a node
//! set up unlike the others, and the node's own state (its name, whether it is draining).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;

use crate::config::{Config, DatabaseUrl, SecretKey};
use crate::crypto;
use crate::store::Store;

/// This node: its name (logs, `/ready`) and whether it is shutting down.
#[derive(Clone, Debug)]
pub struct Node(Arc<NodeState>);

#[derive(Debug)]
struct NodeState {
    name: String,
    draining: AtomicBool,
}

impl Node {
    pub fn new(name: &str) -> Self {
        Self(Arc::new(NodeState {
            name: name.to_string(),
            draining: AtomicBool::new(false),
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// From now on `/ready` answers 503, so the load balancer stops sending requests here.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }
}

const CANARY_CONTEXT: &str = "secret-canary";
const CANARY: &[u8] = b"portcullis secret canary";

/// Refuses to start with a secret key other than the one the database's secrets were sealed
/// with: otherwise the node would start and then fail on every sealed secret (signing keys,
/// second factors), or, on a fresh database, seal with a key the other nodes cannot open.
///
/// Returns the deployment's id (a digest of the canary, which is random): the nodes of one
/// database share it.
pub async fn check_secret_key(
    store: &Store,
    secret: &SecretKey,
    now: i64,
) -> anyhow::Result<String> {
    if store.secret_canary().await?.is_none() {
        let sealed = crypto::seal(secret, CANARY_CONTEXT, CANARY);
        store.insert_secret_canary(&sealed, now).await?;
    }
    // Read again: of nodes starting together, the first one's canary is the one kept.
    let Some(sealed) = store.secret_canary().await? else {
        bail!("the secret-key canary was not stored");
    };
    match crypto::open(secret, CANARY_CONTEXT, &sealed) {
        Ok(opened) if opened == CANARY => {
            use sha2::Digest;
            Ok(hex::encode(&sha2::Sha256::digest(sealed.as_bytes())[..8]))
        }
        _ => bail!(
            "PORTCULLIS_SECRET_KEY is not the key this database's secrets were sealed with; give \
             this node the same key as the others (a node with another key would fail on every \
             stored secret)"
        ),
    }
}

/// Set-ups that work on one machine and surprise on several.
pub fn warn_about_configuration(config: &Config) {
    let sqlite = matches!(config.database, DatabaseUrl::Sqlite(_));
    if sqlite && config.redis_url.is_some() {
        tracing::warn!(
            "PORTCULLIS_REDIS_URL is set with SQLite: sessions go to Redis, but the database is a \
             file of this machine, so other nodes cannot share it; use Postgres for a cluster"
        );
    }
    if !sqlite && config.smtp_url.is_none() {
        tracing::warn!(
            "no PORTCULLIS_SMTP_URL: mail is written as files in this node's data directory, \
             where people never see it; set an SMTP server for a cluster"
        );
    }
}
