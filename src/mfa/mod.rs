//! The security page (`/account/security`): authenticator app (TOTP) with a QR code, email
//! one-time codes, and recovery codes.

pub mod factors;

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
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser, Layout};
use factors::CodeCheck;

/// Wrong codes: five per 15 minutes per account, at sign-in and on this page alike.
pub const WRONG_CODES: Limit = Limit {
    max: 5,
    window_secs: 15 * 60,
};
/// Mailed codes: three per 10 minutes per account.
pub const CODE_MAILS: Limit = Limit {
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
        .route("/account/security/totp", get(show_totp_setup))
        .route("/account/security/totp/setup", post(start_totp))
        .route("/account/security/totp/confirm", post(confirm_totp))
        .route("/account/security/totp/disable", post(disable_totp))
        .route("/account/security/email-otp", get(show_email_setup))
        .route("/account/security/email-otp/setup", post(start_email_codes))
        .route(
            "/account/security/email-otp/confirm",
            post(confirm_email_codes),
        )
        .route(
            "/account/security/email-otp/disable",
            post(disable_email_codes),
        )
        .route(
            "/account/security/recovery-codes",
            post(regenerate_recovery_codes),
        )
        .route(
            "/account/security/recovery-codes.txt",
            post(download_recovery_codes),
        )
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa/security.html")]
struct SecurityPage {
    layout: Layout,
    totp_enabled: bool,
    email_otp_enabled: bool,
    masked_email: String,
    recovery_remaining: i64,
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
    })
}

async fn back_to_security(session: &Session, message: Flash) -> Result<Response, AppError> {
    flash::set(session, message).await?;
    Ok(Redirect::to("/account/security").into_response())
}

#[derive(Deserialize)]
struct EmptyForm {}

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

// --- Authenticator app -------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "mfa/totp_setup.html")]
struct TotpSetupPage {
    layout: Layout,
    qr_svg: String,
    secret: String,
    issuer: String,
    error: Option<String>,
}

async fn start_totp(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    if factors::totp_enabled(&state, &user).await? {
        return back_to_security(
            &session,
            Flash::info(
                "Your authenticator app is already set up. Remove it first to set up another.",
            ),
        )
        .await;
    }
    // A new factor could lock the owner out: it needs the person, not only the session.
    if let Some(page) = step_up_page(&state, &session, &user, "/account/security").await? {
        return Ok(page);
    }
    factors::start_totp(&state, &user).await?;
    Ok(Redirect::to("/account/security/totp").into_response())
}

async fn totp_setup_page(
    state: &AppState,
    session: &Session,
    user: &User,
    error: Option<String>,
) -> Result<Option<TotpSetupPage>, AppError> {
    let Some(factor) = state.store.totp_factor(&user.id).await? else {
        return Ok(None);
    };
    if factor.confirmed_at.is_some() {
        return Ok(None);
    }
    let secret = factors::decrypt_secret(state, &user.id, &factor.secret_enc)?;
    let totp = factors::totp(state, secret, &user.email)?;
    Ok(Some(TotpSetupPage {
        layout: Layout::new(session, Some(user)).await?,
        qr_svg: factors::qr_svg(&totp.get_url())?,
        secret: factors::grouped_secret(&totp),
        issuer: state.config.totp_issuer.clone(),
        error,
    }))
}

async fn show_totp_setup(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Response, AppError> {
    match totp_setup_page(&state, &session, &user, None).await? {
        Some(page) => Ok(page.into_response()),
        None => Ok(Redirect::to("/account/security").into_response()),
    }
}

async fn confirm_totp(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let had_factor = factors::has_second_factor(&state, &user).await?;
    let check = match verify_setup_code(&state, &user, &form.code).await? {
        SecondFactorCheck::Paused(wait) => {
            Err((StatusCode::TOO_MANY_REQUESTS, wrong_codes_message(wait)))
        }
        SecondFactorCheck::Checked(CodeCheck::Accepted) => Ok(()),
        SecondFactorCheck::Checked(other) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            other.message().to_string(),
        )),
    };
    if let Err((status, message)) = check {
        return match totp_setup_page(&state, &session, &user, Some(message)).await? {
            Some(page) => Ok((status, page).into_response()),
            None => Ok(Redirect::to("/account/security").into_response()),
        };
    }
    state
        .store
        .confirm_totp(&user.id, state.clock.now())
        .await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("totp_enabled", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "authenticator app enabled");
    finish_enrolment(
        &state,
        &session,
        &user,
        had_factor,
        "Your authenticator app is set up.",
    )
    .await
}

async fn disable_totp(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmIdentityForm>,
) -> Result<Response, AppError> {
    if let Some(message) = confirm_identity(&state, &meta, &user, &form, true).await? {
        return back_to_security(&session, Flash::error(message)).await;
    }
    state.store.delete_totp(&user.id).await?;
    factors::forget_recovery_codes_if_unprotected(&state, &user.id).await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("totp_removed", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "authenticator app removed");
    back_to_security(
        &session,
        Flash::success("Your authenticator app was removed."),
    )
    .await
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

// --- Email codes -------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "mfa/email_setup.html")]
struct EmailSetupPage {
    layout: Layout,
    masked_email: String,
    error: Option<String>,
}

async fn start_email_codes(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    if user.email_otp_enabled {
        return back_to_security(&session, Flash::info("Email codes are already on.")).await;
    }
    if let Some(page) = step_up_page(&state, &session, &user, "/account/security").await? {
        return Ok(page);
    }
    if let Some(wait) = throttle::take(&state, &code_mails_key(&user.id), CODE_MAILS).await? {
        return back_to_security(&session, Flash::error(code_mails_message(wait))).await;
    }
    if factors::send_email_code(
        &state,
        &user,
        ENABLE_EMAIL_CODES,
        "to turn on sign-in codes by email",
    )
    .await?
    .is_err()
    {
        return back_to_security(
            &session,
            Flash::error("We could not send the email right now. Try again in a few minutes."),
        )
        .await;
    }
    Ok(Redirect::to("/account/security/email-otp").into_response())
}

async fn show_email_setup(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Response, AppError> {
    if user.email_otp_enabled
        || state
            .store
            .email_code(&user.id, ENABLE_EMAIL_CODES)
            .await?
            .is_none()
    {
        return Ok(Redirect::to("/account/security").into_response());
    }
    Ok(EmailSetupPage {
        layout: Layout::new(&session, Some(&user)).await?,
        masked_email: mask_email(&user.email),
        error: None,
    }
    .into_response())
}

async fn confirm_email_codes(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let had_factor = factors::has_second_factor(&state, &user).await?;
    let check = factors::check_email_code(&state, &user, ENABLE_EMAIL_CODES, &form.code).await?;
    if check != CodeCheck::Accepted {
        let page = EmailSetupPage {
            layout: Layout::new(&session, Some(&user)).await?,
            masked_email: mask_email(&user.email),
            error: Some(check.message().into()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    state
        .store
        .set_email_otp_enabled(&user.id, true, state.clock.now())
        .await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("email_codes_enabled", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "email codes enabled");
    finish_enrolment(
        &state,
        &session,
        &user,
        had_factor,
        "Sign-in codes by email are on.",
    )
    .await
}

async fn disable_email_codes(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmIdentityForm>,
) -> Result<Response, AppError> {
    if let Some(message) = confirm_identity(&state, &meta, &user, &form, true).await? {
        return back_to_security(&session, Flash::error(message)).await;
    }
    state
        .store
        .set_email_otp_enabled(&user.id, false, state.clock.now())
        .await?;
    factors::forget_recovery_codes_if_unprotected(&state, &user.id).await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("email_codes_disabled", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "email codes disabled");
    back_to_security(&session, Flash::success("Sign-in codes by email are off.")).await
}

/// The first factor comes with recovery codes, shown at once; later ones just say so.
async fn finish_enrolment(
    state: &AppState,
    session: &Session,
    user: &User,
    had_factor: bool,
    message: &str,
) -> Result<Response, AppError> {
    if had_factor {
        return back_to_security(session, Flash::success(message)).await;
    }
    show_recovery_codes(state, session, user, message).await
}

// --- Recovery codes ----------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "mfa/recovery_codes.html")]
struct RecoveryCodesPage {
    layout: Layout,
    codes: Vec<String>,
}

async fn show_recovery_codes(
    state: &AppState,
    session: &Session,
    user: &User,
    message: &str,
) -> Result<Response, AppError> {
    // The codes exist in this one response only (hashed in the database, nowhere else): the
    // download button posts them back from the page.
    let codes = factors::issue_recovery_codes(state, user).await?;
    flash::set(session, Flash::success(message)).await?;
    Ok(RecoveryCodesPage {
        layout: Layout::new(session, Some(user)).await?,
        codes,
    }
    .into_response())
}

async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmIdentityForm>,
) -> Result<Response, AppError> {
    if !factors::has_second_factor(&state, &user).await? {
        return back_to_security(&session, Flash::info("Set up a second factor first.")).await;
    }
    if let Some(message) = confirm_identity(&state, &meta, &user, &form, true).await? {
        return back_to_security(&session, Flash::error(message)).await;
    }
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("recovery_codes_regenerated", &user.id),
    )
    .await;
    show_recovery_codes(
        &state,
        &session,
        &user,
        "Here are your new recovery codes. The old ones no longer work.",
    )
    .await
}

#[derive(Deserialize)]
struct DownloadForm {
    #[serde(default)]
    codes: String,
}

/// The codes the page showed, posted back by its download button, as a text file. The server
/// keeps no copy: it only echoes codes in the shape it makes (`xxxxx-xxxxx`, ten at most).
async fn download_recovery_codes(
    CurrentUser(_): CurrentUser,
    CsrfForm(form): CsrfForm<DownloadForm>,
) -> Result<Response, AppError> {
    let codes: Vec<&str> = form.codes.split_whitespace().collect();
    let shaped = |code: &&str| {
        code.len() == 11
            && code.char_indices().all(|(i, c)| {
                if i == 5 {
                    c == '-'
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
    };
    if codes.is_empty() || codes.len() > 10 || !codes.iter().all(shaped) {
        return Err(AppError::BadRequest(
            "These are not recovery codes. Make new ones on your security page.".into(),
        ));
    }
    let body = format!(
        "Portcullis recovery codes\n\nEach code works once, when you cannot use your other sign-in methods.\nKeep them somewhere safe.\n\n{}\n",
        codes.join("\n")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"portcullis-recovery-codes.txt\"",
            ),
        ],
        body,
    )
        .into_response())
}
