//! Login throttling, kept in the database so it holds across restarts and nodes: too many
//! failures for one account, or from one client address, within the window pause sign-in for
//! that account or address until the oldest failure leaves the window.

use std::net::IpAddr;

use crate::app::AppState;
use crate::store::StoreResult;

pub fn account_key(email: &str) -> String {
    format!("login:email:{}", crate::store::users_email_key(email))
}

pub fn ip_key(ip: IpAddr) -> String {
    format!("login:ip:{ip}")
}

/// Seconds until sign-in may be tried again, if it is paused for either key.
pub async fn retry_after(state: &AppState, account: &str, ip: &str) -> StoreResult<Option<i64>> {
    let config = &state.config;
    let now = state.clock.now();
    let window = config.login_failure_window.as_secs() as i64;
    let mut wait: Option<i64> = None;
    for (key, limit) in [
        (account, config.login_max_failures_per_account),
        (ip, config.login_max_failures_per_ip),
    ] {
        let (count, oldest) = state.store.throttle_events_since(key, now - window).await?;
        if count >= i64::from(limit) {
            let until = oldest.unwrap_or(now) + window - now;
            wait = Some(wait.unwrap_or(0).max(until.max(1)));
        }
    }
    Ok(wait)
}

pub async fn record_failure(state: &AppState, account: &str, ip: &str) -> StoreResult<()> {
    let now = state.clock.now();
    state.store.record_throttle_event(account, now).await?;
    state.store.record_throttle_event(ip, now).await
}

/// "Wait 12 minutes", rounded up, for people.
pub fn wait_message(seconds: i64) -> String {
    let minutes = (seconds + 59) / 60;
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!(
        "Too many failed sign-in attempts. For your security, sign-in is paused. Wait {minutes} \
         {unit} and try again."
    )
}
