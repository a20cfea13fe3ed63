//! Clients by id, each remembered for a few seconds, so the token endpoint is spared a query
//! per request.

use super::{Client, find};
use crate::bus::Change;
use crate::store::{Store, StoreError};

/// How long a looked-up client (or its absence) is reused at most. Any client change, here or
/// on another node (the change bus), drops every entry at once; this bounds a lost message.
pub const CACHE_SECS: i64 = 5;

/// When a client was looked up, at which `Clients` generation, and what was found.
type CacheEntries = std::collections::HashMap<String, (i64, u64, Option<Client>)>;

/// Clients by id, each remembered for `CACHE_SECS` or until a client changes.
#[derive(Clone, Debug, Default)]
pub struct ClientCache {
    entries: std::sync::Arc<std::sync::RwLock<CacheEntries>>,
}

impl ClientCache {
    pub async fn get(
        &self,
        store: &Store,
        id: &str,
        now: i64,
    ) -> Result<Option<Client>, StoreError> {
        let generation = store.changes().generation(Change::Clients);
        if let Ok(entries) = self.entries.read()
            && let Some((at, seen, client)) = entries.get(id)
            && *seen == generation
            && (0..CACHE_SECS).contains(&(now - at))
        {
            return Ok(client.clone());
        }
        let client = find(store, id).await?;
        if let Ok(mut entries) = self.entries.write() {
            // Bounded: unknown ids sent in bulk cannot grow it without limit.
            if entries.len() > 10_000 {
                entries.retain(|_, (at, seen, _)| *seen == generation && now - *at < CACHE_SECS);
                if entries.len() > 10_000 {
                    entries.clear();
                }
            }
            entries.insert(id.to_string(), (now, generation, client.clone()));
        }
        Ok(client)
    }
}
