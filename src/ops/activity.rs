//! Counts per hour of what the admin overview charts: audit events by name, second factors by
//! method, tokens by grant, throttle refusals by limit. Kept in memory and added to the
//! database every few seconds (and before an overview is shown), so the overview of every node
//! shows the whole cluster, and a busy token endpoint does not write a row per token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::store::{ActivityCount, Store, StoreResult};

/// How often a node adds its counts to the database.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

type Key = (i64, &'static str, &'static str);

#[derive(Clone, Debug, Default)]
pub struct Activity(Arc<Mutex<HashMap<Key, i64>>>);

impl Activity {
    pub fn add(&self, now: i64, kind: &'static str, label: &'static str) {
        let hour = now - now.rem_euclid(3600);
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry((hour, kind, label)).or_default() += 1;
    }

    /// Adds what was counted since the last flush to the database; on failure the counts are
    /// kept for the next one, so none is lost.
    pub async fn flush(&self, store: &Store) -> StoreResult<()> {
        let taken = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            return Ok(());
        }
        let rows: Vec<ActivityCount> = taken
            .iter()
            .map(|((hour, kind, label), count)| ActivityCount {
                hour: *hour,
                kind: (*kind).to_string(),
                label: (*label).to_string(),
                count: *count,
            })
            .collect();
        let added = store.add_activity(&rows).await;
        if added.is_err() {
            let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, count) in taken {
                *counts.entry(key).or_default() += count;
            }
        }
        added
    }
}
