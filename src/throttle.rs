//! Rate limits kept in the database (so they hold across restarts and nodes): at most `max`
//! attempts per key in a window that starts at the first attempt.
//!
//! An attempt is counted *before* the work it limits (a password hash, a code check, a mail),
//! by one statement that counts it only while the key is under its limit. Parallel requests
//! therefore never get more than `max` attempts evaluated: checking first and recording after
//! the work let 40 parallel wrong passwords all be tried against a limit of 5. Work that turns
//! out not to be a guess (a right password, a right or expired code) gives its attempt back.

use crate::app::AppState;
use crate::store::StoreResult;

#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// The limit's name in metrics (`login_ip`, `signup_ip`, ...).
    pub name: &'static str,
    pub max: u32,
    pub window_secs: i64,
}

/// Counts one attempt under `key`; `Some(seconds to wait)` instead when the limit is reached
/// (and then nothing is counted).
pub async fn take(state: &AppState, key: &str, limit: Limit) -> StoreResult<Option<i64>> {
    let now = state.clock.now();
    let counted = state
        .store
        .take_throttle_attempt(key, now, now - limit.window_secs, i64::from(limit.max))
        .await?;
    if counted {
        return Ok(None);
    }
    state.metrics.throttled(limit.name);
    wait_time(state, key, limit)
        .await
        .map(|wait| Some(wait.unwrap_or(1)))
}

/// Seconds until an attempt under `key` is allowed again, without counting one.
pub async fn wait_time(state: &AppState, key: &str, limit: Limit) -> StoreResult<Option<i64>> {
    let now = state.clock.now();
    let Some((window_start, attempts)) = state.store.throttle_window(key).await? else {
        return Ok(None);
    };
    let window_open = window_start > now - limit.window_secs;
    if !window_open || attempts < i64::from(limit.max) {
        return Ok(None);
    }
    Ok(Some((window_start + limit.window_secs - now).max(1)))
}

/// Gives back an attempt taken under `key` (the work was no guess).
pub async fn release(state: &AppState, key: &str) -> StoreResult<()> {
    state.store.release_throttle_attempt(key).await
}

/// Forgets every attempt under `key` (after a successful sign-in to that account).
pub async fn clear(state: &AppState, key: &str) -> StoreResult<()> {
    state.store.clear_throttle(key).await
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
