//! The loop both outbox workers run (event deliveries and mail): claim what is due while there
//! is room, handle each claim concurrently, and sleep until new work is written here or the
//! poll interval passes (work written by other nodes, retries coming due).

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

/// How long a claim holds: longer than one attempt may take.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the queue is looked at when nothing woke the worker.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 600;

/// One kind of queued work.
pub trait Queue: Clone + Send + Sync + 'static {
    type Item: Send + 'static;
    /// Items handled at once on one node.
    const MAX_IN_FLIGHT: i64;
    /// Leases up to `limit` due items.
    fn claim(&self, limit: i64) -> impl Future<Output = Vec<Self::Item>> + Send;
    /// Tries one item and records how it went.
    fn handle(&self, item: Self::Item) -> impl Future<Output = ()> + Send;
    /// Completes when this node queued new work.
    fn written(&self) -> impl Future<Output = ()> + Send;
}

/// Runs until the task is aborted. Claims while there is room, without waiting for the items
/// in flight (a slow receiver holds up only its own work), and in batches: a claim is a write,
/// so it waits until a quarter of the places are free.
pub async fn run<Q: Queue>(queue: Q) {
    let mut in_flight = JoinSet::new();
    loop {
        let room = Q::MAX_IN_FLIGHT - in_flight.len() as i64;
        let claimed = if in_flight.is_empty() || room >= (Q::MAX_IN_FLIGHT / 4).max(1) {
            queue.claim(room).await
        } else {
            Vec::new()
        };
        let idle = claimed.is_empty();
        for item in claimed {
            let queue = queue.clone();
            in_flight.spawn(async move { queue.handle(item).await });
        }
        if idle {
            tokio::select! {
                () = queue.written() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
                Some(_) = in_flight.join_next() => {}
            }
        }
        while in_flight.try_join_next().is_some() {}
    }
}

/// Seconds before the next attempt after `attempts` earlier ones: 1, 2, 4 … up to 10 minutes,
/// each between half and all of that (jitter, so receivers that come back are not hit by every
/// retry at once).
pub fn backoff(attempts: i64) -> i64 {
    let full = 1i64
        .checked_shl(attempts.clamp(0, 30) as u32)
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS);
    let half = full / 2;
    (half + rand::random_range(0..=full - half)).max(1)
}

/// When to try again after a failure, or `None` when the work is older than `max_age` (give up).
pub fn retry_at(now: i64, created_at: i64, attempts: i64, max_age: Duration) -> Option<i64> {
    (now - created_at < max_age.as_secs() as i64).then(|| now + backoff(attempts))
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

    #[test]
    fn work_older_than_the_maximum_age_is_given_up() {
        let day = Duration::from_secs(86_400);
        assert!(retry_at(1_000, 1_000 - 86_399, 3, day).is_some());
        assert_eq!(retry_at(1_000, 1_000 - 86_400, 3, day), None);
    }
}
