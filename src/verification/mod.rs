//! Email verification: a single-use link that expires after 24 hours.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::crypto;
use crate::input::mask_email;
use crate::mail::{mail_single_use_link, messages};
use crate::store::{TokenProblem, User};
use crate::throttle::{self, Limit};
use crate::web::EmptyForm;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser, Layout, MaybeUser};

pub const PURPOSE: &str = "verify_email";
const LIFETIME_SECS: i64 = 24 * 3600;
/// Three verification mails per hour per account.
const RESEND_LIMIT: Limit = Limit {
    name: "verification_mail",
    max: 3,
    window_secs: 3600,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/verify-email", get(verify))
        .route("/account/verify-email", post(resend))
}

/// Marks the address confirmed, with its `user.email_verified` event (written only when it was
/// not confirmed yet).
pub async fn mark_verified(state: &AppState, user: &User) -> Result<(), crate::store::StoreError> {
    let event = state
        .events
        .about_user(crate::events::EventType::UserEmailVerified, user);
    state
        .store
        .set_email_verified(&user.id, state.clock.now(), event)
        .await
}

/// Creates a new link and queues its mail.
pub async fn send_link(state: &AppState, user: &User) -> Result<(), AppError> {
    mail_single_use_link(
        state,
        user,
        PURPOSE,
        LIFETIME_SECS,
        "/verify-email",
        messages::verify_email,
    )
    .await?;
    Ok(())
}

/// Sends a link unless this account had too many lately; says what happened.
pub async fn send_link_throttled(state: &AppState, user: &User) -> Result<Flash, AppError> {
    let key = format!("mail:verify:{}", user.id);
    if let Some(wait) = throttle::take(state, &key, RESEND_LIMIT).await? {
        return Ok(Flash::error(format!(
            "We already sent several links. Wait {} before asking for another.",
            throttle::minutes(wait)
        )));
    }
    send_link(state, user).await?;
    Ok(Flash::success(format!(
        "We sent a link to {}. It expires in 24 hours.",
        mask_email(&user.email)
    )))
}

#[derive(Template, WebTemplate)]
#[template(path = "verification/result.html")]
struct ResultPage {
    layout: Layout,
    title: &'static str,
    message: &'static str,
    signed_in: bool,
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn verify(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    MaybeUser(user): MaybeUser,
    Query(query): Query<TokenQuery>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let outcome = state
        .store
        .consume_email_token(&crypto::sha256_hex(query.token.trim()), PURPOSE, now)
        .await?;
    let (status, title, message) = match outcome {
        Ok(user_id) => {
            let stripped = match state.store.find_user_by_id(&user_id).await? {
                Some(owner) => crate::auth::address_proven(&state, &meta, &owner).await?,
                None => Default::default(),
            };
            tracing::info!(%user_id, "email verified");
            let message = if stripped.is_empty() {
                "Thank you: your email address is confirmed."
            } else {
                "Thank you: your email address is confirmed. Sign-in providers, second factors \
                 and app access set up before it was confirmed were removed; set them up again \
                 from your account page if they were yours."
            };
            (StatusCode::OK, "Email address confirmed", message)
        }
        Err(TokenProblem::Expired) => (
            StatusCode::GONE,
            "This link has expired",
            "Links to confirm an email address work for 24 hours. Sign in and send a new one from \
             your account page.",
        ),
        Err(TokenProblem::Used) => (
            StatusCode::GONE,
            "This link was already used",
            "Each link works once. If your address is not confirmed yet, send a new link from \
             your account page.",
        ),
        Err(TokenProblem::Unknown) => (
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "Check that you opened the whole link from the email, or send a new one from your \
             account page.",
        ),
    };
    let page = ResultPage {
        layout: Layout::page(&session, user.as_ref()).await?,
        title,
        message,
        signed_in: user.is_some(),
    };
    Ok((status, page).into_response())
}

async fn resend(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    let message = if user.email_verified {
        Flash::info("Your email address is already confirmed.")
    } else {
        send_link_throttled(&state, &user).await?
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/account").into_response())
}
