//! The second step of signing in, for the pages and the API alike: which method, the code
//! limit counted before the check, and what a wrong code records.

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::mfa::factors::{self, CodeCheck};
use crate::mfa::{WRONG_CODES, wrong_codes_key};
use crate::store::User;
use crate::throttle;
use crate::web::AppError;

/// A way to pass the second step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
    Recovery,
}

impl Method {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "totp" => Some(Self::Totp),
            "email" => Some(Self::Email),
            "recovery" | "recovery_code" => Some(Self::Recovery),
            _ => None,
        }
    }

    /// What the session records (`amr` later).
    pub fn record_name(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Email => "email_otp",
            Self::Recovery => "recovery_code",
        }
    }
}

/// Checks a second-step code with a method the person has (a recovery code always counts as
/// one: it is refused when none is left).
async fn check_code(
    state: &AppState,
    user: &User,
    method: Method,
    code: &str,
) -> Result<CodeCheck, AppError> {
    Ok(match method {
        Method::Totp if factors::totp_enabled(state, user).await? => {
            factors::check_totp(state, user, code).await?
        }
        Method::Email if user.email_otp_enabled => {
            factors::check_email_code(state, user, crate::login::second_factor::LOGIN_CODE, code)
                .await?
        }
        Method::Recovery => factors::check_recovery_code(state, user, code).await?,
        _ => CodeCheck::Wrong,
    })
}

/// The outcome of a second-step code.
pub enum SecondFactorCheck {
    Checked(CodeCheck),
    /// Too many wrong codes lately: seconds to wait (nothing was checked).
    Paused(i64),
}

/// Checks a second-step code under the account's code limit: the attempt is counted before
/// the check and given back unless it was a guess (an expired or replayed code teaches an
/// attacker nothing); a wrong code is recorded in the audit log.
pub async fn verify_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    user: &User,
    method: Method,
    code: &str,
) -> Result<SecondFactorCheck, AppError> {
    let key = wrong_codes_key(&user.id);
    if let Some(wait) = throttle::take(state, &key, WRONG_CODES).await? {
        state
            .metrics
            .second_factor(method.record_name(), "throttled");
        return Ok(SecondFactorCheck::Paused(wait));
    }
    let check = check_code(state, user, method, code).await?;
    let result = match check {
        CodeCheck::Accepted => "success",
        CodeCheck::Wrong => "failure",
        CodeCheck::Replayed | CodeCheck::Expired => "rejected",
    };
    state.metrics.second_factor(method.record_name(), result);
    if check == CodeCheck::Wrong {
        let event = Event::own("second_factor_failed", &user.id).detail(method.record_name());
        audit::record(state, meta, event).await;
    } else {
        throttle::release(state, &key).await?;
    }
    Ok(SecondFactorCheck::Checked(check))
}

/// Checks a code from the authenticator app being set up, under the same code limit.
pub async fn verify_setup_code(
    state: &AppState,
    user: &User,
    code: &str,
) -> Result<SecondFactorCheck, AppError> {
    let key = wrong_codes_key(&user.id);
    if let Some(wait) = throttle::take(state, &key, WRONG_CODES).await? {
        return Ok(SecondFactorCheck::Paused(wait));
    }
    let check = factors::check_totp_setup(state, user, code).await?;
    if check != CodeCheck::Wrong {
        throttle::release(state, &key).await?;
    }
    Ok(SecondFactorCheck::Checked(check))
}
