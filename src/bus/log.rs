//! The change log: how changes reach the nodes of other regions. Redis and `NOTIFY` stay in
//! a region, so every change is also written to the primary's `change_log`, and every node
//! follows that table on its region's replica. The replica applies the WAL in order, so a node
//! sees a change only once its replica holds what the change describes: the cache it drops
//! cannot be refilled with the state from before.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Change, Changes};
use crate::store::Store;

/// How often a node looks for new changes: the part of a revocation's travel time beyond the
/// replication lag.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// A number skipped this long is taken as a transaction that rolled back.
const GAP_PATIENCE: Duration = Duration::from_secs(5);
const BATCH: i64 = 1000;

pub fn kind_name(change: Change) -> &'static str {
    match change {
        Change::Tokens => "tokens",
        Change::Clients => "clients",
        Change::Keys => "keys",
    }
}

fn parse_kind(name: &str) -> Option<Change> {
    match name {
        "tokens" => Some(Change::Tokens),
        "clients" => Some(Change::Clients),
        "keys" => Some(Change::Keys),
        _ => None,
    }
}

/// Writes a change made here for the other regions.
pub async fn record(store: &Store, changes: &Changes, change: Change, now: i64) {
    if let Err(e) = store
        .record_change(changes.origin(), kind_name(change), now)
        .await
    {
        tracing::warn!(
            error = %e,
            ?change,
            "could not write a change to the change log; other regions see it when their \
             caches expire"
        );
    }
}

/// Which change numbers have been applied. Numbers are taken when a transaction writes and
/// become visible when it commits, so a later number can be seen before an earlier one: the
/// follower keeps its place at the first gap, and gives a gap up after `GAP_PATIENCE`.
#[derive(Debug, Default)]
struct Position {
    /// Every number up to here was applied or given up.
    through: i64,
    /// Numbers seen beyond the first gap.
    ahead: BTreeSet<i64>,
    gap_since: Option<Instant>,
}

impl Position {
    fn starting_at(through: i64) -> Self {
        Self {
            through,
            ..Self::default()
        }
    }

    /// True when `seq` is new (not applied before).
    fn take(&mut self, seq: i64) -> bool {
        seq > self.through && self.ahead.insert(seq)
    }

    /// Moves past the numbers seen in a row, and past a gap waited on long enough.
    fn advance(&mut self, now: Instant) {
        loop {
            while self.ahead.first() == Some(&(self.through + 1)) {
                self.ahead.pop_first();
                self.through += 1;
            }
            let Some(&next) = self.ahead.first() else {
                self.gap_since = None;
                return;
            };
            match self.gap_since {
                None => {
                    self.gap_since = Some(now);
                    return;
                }
                Some(since) if now.duration_since(since) >= GAP_PATIENCE => {
                    self.through = next - 1;
                    self.gap_since = None;
                }
                Some(_) => return,
            }
        }
    }
}

/// Follows the change log until `until` completes, applying other nodes' changes.
pub async fn follow(store: Store, changes: Changes, until: impl Future<Output = ()>) {
    let follow = async {
        let mut position = loop {
            match store.last_change().await {
                Ok(through) => break Position::starting_at(through),
                Err(e) => {
                    tracing::warn!(error = %e, "change log: cannot read where it ends");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match store.changes_after(position.through, BATCH).await {
                Ok(rows) => {
                    if failing {
                        // Changes may have been given up on meanwhile.
                        changes.apply_all();
                        failing = false;
                    }
                    for (seq, origin, kind) in rows {
                        if !position.take(seq) || origin == changes.origin() {
                            continue;
                        }
                        match parse_kind(&kind) {
                            Some(change) => changes.apply(change),
                            None => tracing::warn!(%kind, "change log: unknown kind ignored"),
                        }
                    }
                    position.advance(Instant::now());
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "change log: cannot read; caches expire meanwhile");
                    }
                    failing = true;
                }
            }
        }
    };
    tokio::select! {
        () = follow => {}
        () = until => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_commit_below_a_seen_number_is_still_applied() {
        let now = Instant::now();
        let mut position = Position::starting_at(10);
        assert!(position.take(12));
        position.advance(now);
        assert_eq!(position.through, 10, "waits at the gap");
        assert!(position.take(11), "11 committed after 12 is new");
        assert!(!position.take(12), "12 is not applied twice");
        position.advance(now);
        assert_eq!(position.through, 12);
        assert!(position.ahead.is_empty());
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_after_a_while() {
        let start = Instant::now();
        let mut position = Position::starting_at(0);
        position.take(2);
        position.take(3);
        position.advance(start);
        assert_eq!(position.through, 0);
        position.advance(start + GAP_PATIENCE / 2);
        assert_eq!(position.through, 0);
        position.advance(start + GAP_PATIENCE);
        assert_eq!(position.through, 3);
        assert!(
            !position.take(1),
            "a number given up on is not applied later"
        );
    }
}
