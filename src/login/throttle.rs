//! Login throttling: too many failures for one account, or from one client address, within the
//! window pause sign-in for that account or address until the oldest failure leaves it.

use std::net::IpAddr;

use crate::app::AppState;
use crate::store::StoreResult;
use crate::throttle::{self, Limit};

pub fn account_key(email: &str) -> String {
    format!("login:email:{}", crate::store::users_email_key(email))
}

pub fn ip_key(ip: IpAddr) -> String {
    format!("login:ip:{ip}")
}

/// Seconds until sign-in may be tried again, if it is paused for either key.
pub async fn retry_after(state: &AppState, account: &str, ip: &str) -> StoreResult<Option<i64>> {
    let config = &state.config;
    let window_secs = config.login_failure_window.as_secs() as i64;
    let account_wait = throttle::wait_time(
        state,
        account,
        Limit {
            max: config.login_max_failures_per_account,
            window_secs,
        },
    )
    .await?;
    let ip_wait = throttle::wait_time(
        state,
        ip,
        Limit {
            max: config.login_max_failures_per_ip,
            window_secs,
        },
    )
    .await?;
    Ok(account_wait.max(ip_wait))
}

pub async fn record_failure(state: &AppState, account: &str, ip: &str) -> StoreResult<()> {
    throttle::record(state, account).await?;
    throttle::record(state, ip).await
}

pub fn wait_message(seconds: i64) -> String {
    format!(
        "Too many failed sign-in attempts. For your security, sign-in is paused. Wait {} and try \
         again.",
        throttle::minutes(seconds)
    )
}
