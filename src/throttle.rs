//! Rate limits kept in the database (so they hold across restarts and nodes): at most `limit`
//! events per key within a sliding window.

use crate::app::AppState;
use crate::store::StoreResult;

#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub max: u32,
    pub window_secs: i64,
}

/// Seconds until the next event is allowed under `key`, or `None` if it is allowed now.
pub async fn wait_time(state: &AppState, key: &str, limit: Limit) -> StoreResult<Option<i64>> {
    let now = state.clock.now();
    let (count, oldest) = state
        .store
        .throttle_events_since(key, now - limit.window_secs)
        .await?;
    if count < i64::from(limit.max) {
        return Ok(None);
    }
    Ok(Some(
        (oldest.unwrap_or(now) + limit.window_secs - now).max(1),
    ))
}

pub async fn record(state: &AppState, key: &str) -> StoreResult<()> {
    state
        .store
        .record_throttle_event(key, state.clock.now())
        .await
}

/// Checks and, when allowed, records in one step (for actions such as resending a mail).
pub async fn take(state: &AppState, key: &str, limit: Limit) -> StoreResult<Option<i64>> {
    let wait = wait_time(state, key, limit).await?;
    if wait.is_none() {
        record(state, key).await?;
    }
    Ok(wait)
}

/// "12 minutes", rounded up, for people.
pub fn minutes(seconds: i64) -> String {
    let minutes = (seconds + 59) / 60;
    if minutes == 1 {
        "1 minute".into()
    } else {
        format!("{minutes} minutes")
    }
}
