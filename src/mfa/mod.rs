//! The security page (`/account/security`): passkeys (their routes are in `passkeys`),
//! authenticator app (TOTP) with a QR code, email one-time codes, and recovery codes.

mod email_codes;
pub mod factors;
mod recovery;
mod totp;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::account::step_up::step_up_page;
use crate::app::AppState;
use crate::auth::second_factor::{SecondFactorCheck, verify_setup_code};
use crate::auth::{self, Confirmation, Proof};
use crate::input::mask_email;
use crate::store::User;
use crate::throttle::{self, Limit};
use crate::web::EmptyForm;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser, Layout};
use factors::CodeCheck;

/// Wrong codes: five per 15 minutes per account, at sign-in and on this page alike.
pub const WRONG_CODES: Limit = Limit {
    name: "second_factor_codes",
    max: 5,
    window_secs: 15 * 60,
};
/// Mailed codes: three per 10 minutes per account.
pub const CODE_MAILS: Limit = Limit {
    name: "code_mails",
    max: 3,
    window_secs: 10 * 60,
};
const ENABLE_EMAIL_CODES: &str = "enable_email_otp";

/// What a person reads when wrong codes have paused their second step for `wait` seconds.
pub fn wrong_codes_message(wait: i64) -> String {
    format!(
        "Too many wrong codes. For your security, wait {} and try again.",
        throttle::minutes(wait)
    )
}

/// What a person reads when they asked for too many mailed codes lately.
pub fn code_mails_message(wait: i64) -> String {
    format!(
        "We already sent several codes. Wait {} before asking for another.",
        throttle::minutes(wait)
    )
}

pub fn wrong_codes_key(user_id: &str) -> String {
    format!("2fa:{user_id}")
}

pub fn code_mails_key(user_id: &str) -> String {
    format!("mail:code:{user_id}")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/security", get(show))
        .merge(totp::routes())
        .merge(email_codes::routes())
        .merge(recovery::routes())
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa/security.html")]
struct SecurityPage {
    layout: Layout,
    totp_enabled: bool,
    email_otp_enabled: bool,
    masked_email: String,
    recovery_remaining: i64,
    /// Passkeys can be added here (they are on, at this public URL).
    passkeys_on: bool,
    passkeys: Vec<crate::passkeys::PasskeyListing>,
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<SecurityPage, AppError> {
    Ok(SecurityPage {
        layout: Layout::new(&session, Some(&user)).await?,
        totp_enabled: factors::totp_enabled(&state, &user).await?,
        email_otp_enabled: user.email_otp_enabled,
        masked_email: mask_email(&user.email),
        recovery_remaining: state.store.unused_recovery_codes(&user.id).await?,
        passkeys_on: state.passkeys.enabled(),
        passkeys: crate::passkeys::passkey_listing(&state, &user).await?,
    })
}

pub(crate) async fn back_to_security(
    session: &Session,
    message: Flash,
) -> Result<Response, AppError> {
    flash::set(session, message).await?;
    Ok(Redirect::to("/account/security").into_response())
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
struct ConfirmIdentityForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// Removing a factor needs the password, or a current code from the authenticator app (the
/// sign-in service decides). `Some(message)` when neither was right.
async fn confirm_identity(
    state: &AppState,
    meta: &crate::audit::RequestMeta,
    user: &User,
    form: &ConfirmIdentityForm,
    allow_totp_code: bool,
) -> Result<Option<String>, AppError> {
    let proof = if !form.password.is_empty() {
        Some(Proof::Password(form.password.clone()))
    } else if allow_totp_code && !form.code.trim().is_empty() {
        Some(Proof::AuthenticatorCode(form.code.clone()))
    } else {
        None
    };
    let by_password = matches!(proof, Some(Proof::Password(_)));
    let answer = match proof {
        Some(proof) => auth::confirm_identity(state, meta, user, proof).await?,
        None => Confirmation::Wrong,
    };
    Ok(match answer {
        Confirmation::Confirmed => None,
        Confirmation::Paused(wait) if by_password => Some(auth::throttle::wait_message(wait)),
        Confirmation::Paused(wait) => Some(wrong_codes_message(wait)),
        Confirmation::Wrong if allow_totp_code => Some(
            "Enter your password or a current code from your authenticator app to confirm.".into(),
        ),
        Confirmation::Wrong => Some("Enter your password to confirm.".into()),
    })
}

/// The first factor comes with recovery codes, shown at once; later ones just say so.
pub(crate) async fn finish_enrolment(
    state: &AppState,
    session: &Session,
    user: &User,
    had_factor: bool,
    message: &str,
) -> Result<Response, AppError> {
    if had_factor {
        return back_to_security(session, Flash::success(message)).await;
    }
    recovery::show_recovery_codes(state, session, user, message).await
}
