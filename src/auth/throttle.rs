//! Password throttling: too many failures for one account, or from one client address, within
//! the window pause password checks for that account or address.

use crate::app::AppState;
use crate::store::StoreResult;
use crate::throttle::{self, Limit};

pub fn account_key(email: &str) -> String {
    format!("login:email:{}", crate::store::users_email_key(email))
}

/// The client address as the audit log and the trusted-proxy rule see it.
pub fn ip_key(ip: Option<&str>) -> String {
    format!("login:ip:{}", ip.unwrap_or("unknown"))
}

/// One password attempt, already counted against the account and the client address.
#[must_use = "a right password must call `succeeded`"]
pub struct PasswordAttempt {
    account: String,
    ip: String,
}

/// Counts a password attempt before the hash is computed; `Err(seconds to wait)` when sign-in
/// is paused for the account or the address (then nothing stays counted).
pub async fn begin(
    state: &AppState,
    account: &str,
    ip: &str,
) -> StoreResult<Result<PasswordAttempt, i64>> {
    let config = &state.config;
    let window_secs = config.login_failure_window.as_secs() as i64;
    let per_ip = Limit {
        name: "login_ip",
        max: config.login_max_failures_per_ip,
        window_secs,
    };
    let per_account = Limit {
        name: "login_account",
        max: config.login_max_failures_per_account,
        window_secs,
    };
    if let Some(wait) = throttle::take(state, ip, per_ip).await? {
        return Ok(Err(wait));
    }
    if let Some(wait) = throttle::take(state, account, per_account).await? {
        throttle::release(state, ip).await?;
        return Ok(Err(wait));
    }
    Ok(Ok(PasswordAttempt {
        account: account.to_string(),
        ip: ip.to_string(),
    }))
}

impl PasswordAttempt {
    /// The password was right: the account's failures are forgotten, and this attempt is not
    /// held against the address. A wrong password simply keeps its count.
    pub async fn succeeded(self, state: &AppState) -> StoreResult<()> {
        state
            .store
            .forget_and_give_back(&self.account, &self.ip)
            .await
    }
}

impl PasswordAttempt {
    /// The password was never checked (the server was too busy): the attempt is given back.
    pub async fn not_checked(self, state: &AppState) -> StoreResult<()> {
        throttle::release(state, &self.account).await?;
        throttle::release(state, &self.ip).await
    }
}

pub fn wait_message(seconds: i64) -> String {
    format!(
        "Too many failed sign-in attempts. For your security, sign-in is paused. Wait {} and try \
         again.",
        throttle::minutes(seconds)
    )
}
