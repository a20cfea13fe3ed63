//! Clients by id, each remembered for a few seconds, so the token endpoint is spared a query
//! per request.

use super::{Client, find};
use crate::store::{Store, StoreError};

/// How long a looked-up client (or its absence) is reused: changes made with the CLI or on
/// another node reach this one within this time, and the token endpoint is spared a query
/// per request.
pub const CACHE_SECS: i64 = 5;

/// When a client was looked up, and what was found.
type CacheEntries = std::collections::HashMap<String, (i64, Option<Client>)>;

/// Clients by id, each remembered for `CACHE_SECS`.
#[derive(Clone, Debug, Default)]
pub struct ClientCache {
    entries: std::sync::Arc<std::sync::RwLock<CacheEntries>>,
}

impl ClientCache {
    /// Forgets a client changed on this node, so the change applies here at once.
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }

    pub async fn get(
        &self,
        store: &Store,
        id: &str,
        now: i64,
    ) -> Result<Option<Client>, StoreError> {
        if let Ok(entries) = self.entries.read()
            && let Some((at, client)) = entries.get(id)
            && (0..CACHE_SECS).contains(&(now - at))
        {
            return Ok(client.clone());
        }
        let client = find(store, id).await?;
        if let Ok(mut entries) = self.entries.write() {
            // Bounded: unknown ids sent in bulk cannot grow it without limit.
            if entries.len() > 10_000 {
                entries.retain(|_, (at, _)| now - *at < CACHE_SECS);
                if entries.len() > 10_000 {
                    entries.clear();
                }
            }
            entries.insert(id.to_string(), (now, client.clone()));
        }
        Ok(client)
    }
}
