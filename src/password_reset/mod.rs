//! "Forgot password?": a form that answers the same whether the account exists or not, a
//! single-use link valid for 1 hour, and a new-password form. A reset ends every session.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::crypto;
use crate::input::{Email, mask_email};
use crate::mail::{mail_single_use_link, messages};
use crate::password;
use crate::store::TokenProblem;
use crate::throttle::{self, Limit};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout};

const PURPOSE: &str = "reset_password";
const LIFETIME_SECS: i64 = 3600;
/// Reset mails: three an hour per address, twenty an hour per client.
const PER_EMAIL: Limit = Limit {
    name: "reset_mail_account",
    max: 3,
    window_secs: 3600,
};
const PER_IP: Limit = Limit {
    name: "reset_mail_ip",
    max: 20,
    window_secs: 3600,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/password/forgot", get(show_forgot).post(submit_forgot))
        .route("/password/reset", get(show_reset).post(submit_reset))
}

#[derive(Template, WebTemplate)]
#[template(path = "password_reset/forgot.html")]
struct ForgotPage {
    layout: Layout,
    email: String,
    error: Option<String>,
    sent_to: Option<String>,
}

async fn show_forgot(session: Session) -> Result<ForgotPage, AppError> {
    Ok(ForgotPage {
        layout: Layout::new(&session, None).await?,
        email: String::new(),
        error: None,
        sent_to: None,
    })
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

async fn submit_forgot(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Result<Response, AppError> {
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(why) => {
            let page = ForgotPage {
                layout: Layout::new(&session, None).await?,
                email: form.email.trim().to_string(),
                error: Some(why.into()),
                sent_to: None,
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let ip_key = format!("mail:reset-ip:{}", peer.ip());
    if let Some(wait) = throttle::take(&state, &ip_key, PER_IP).await? {
        let page = ForgotPage {
            layout: Layout::new(&session, None).await?,
            email: email.to_string(),
            error: Some(format!(
                "Too many reset requests from your network. Wait {} and try again.",
                throttle::minutes(wait)
            )),
            sent_to: None,
        };
        return Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response());
    }

    // The answer is the same whether or not the account exists, and as quick: the mail is
    // queued, never sent while the person waits.
    let email_key = format!(
        "mail:reset:{}",
        crate::store::users_email_key(email.as_str())
    );
    let user = state.store.find_user_by_email(email.as_str()).await?;
    if let Some(user) = user.filter(|u| !u.disabled)
        && throttle::take(&state, &email_key, PER_EMAIL)
            .await?
            .is_none()
    {
        send_reset_mail(&state, &user).await?;
    }
    let page = ForgotPage {
        layout: Layout::new(&session, None).await?,
        email: email.to_string(),
        error: None,
        sent_to: Some(mask_email(email.as_str())),
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "password_reset/reset.html")]
struct ResetPage {
    layout: Layout,
    token: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// Queues a mail with a single-use reset link (1 hour).
pub async fn send_reset_mail(state: &AppState, user: &crate::store::User) -> Result<(), AppError> {
    mail_single_use_link(
        state,
        user,
        PURPOSE,
        LIFETIME_SECS,
        "/password/reset",
        messages::password_reset,
    )
    .await?;
    Ok(())
}

fn link_problem(problem: TokenProblem) -> Response {
    let (status, title, message) = match problem {
        TokenProblem::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Reset links work for 1 hour. Ask for a new one.",
        ),
        TokenProblem::Used => (
            StatusCode::GONE,
            "This link was already used",
            "Each reset link works once. If you still need to reset your password, ask for a new link.",
        ),
        TokenProblem::Unknown => (
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "Check that you opened the whole link from the email, or ask for a new one.",
        ),
    };
    AppError::page(status, title, message)
        .with_action("Ask for a new link", "/password/forgot")
        .into_response()
}

async fn show_reset(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<TokenQuery>,
) -> Result<Response, AppError> {
    let token = query.token.trim().to_string();
    let now = state.clock.now();
    if let Err(problem) = state
        .store
        .check_email_token(&crypto::sha256_hex(&token), PURPOSE, now)
        .await?
    {
        return Ok(link_problem(problem));
    }
    Ok(ResetPage {
        layout: Layout::new(&session, None).await?,
        token,
        error: None,
    }
    .into_response())
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

async fn submit_reset(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> Result<Response, AppError> {
    let token_hash = crypto::sha256_hex(form.token.trim());
    let now = state.clock.now();
    let user_id = match state
        .store
        .check_email_token(&token_hash, PURPOSE, now)
        .await?
    {
        Ok(user_id) => user_id,
        Err(problem) => return Ok(link_problem(problem)),
    };
    let Some(user) = state.store.find_user_by_id(&user_id).await? else {
        return Ok(link_problem(TokenProblem::Unknown));
    };
    if let Err(why) = password::check_policy(&form.password, &user.email) {
        let page = ResetPage {
            layout: Layout::new(&session, None).await?,
            token: form.token.trim().to_string(),
            error: Some(why.into()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let hash = state.hasher.hash(form.password).await?;
    // Use the link up only now, atomically, so a mistyped password does not waste it and two
    // tabs cannot both use it.
    if let Err(problem) = state
        .store
        .consume_email_token(&token_hash, PURPOSE, now)
        .await?
    {
        return Ok(link_problem(problem));
    }
    state
        .store
        .set_password_hash(
            &user.id,
            &hash,
            now,
            state
                .events
                .about_user(crate::events::EventType::PasswordReset, &user),
        )
        .await?;
    crate::throttle::clear(&state, &crate::auth::throttle::account_key(&user.email)).await?;
    // Whoever had another reset link, or was half-way through an API sign-in, is out too.
    state.store.end_email_tokens(&user.id, PURPOSE, now).await?;
    state
        .store
        .end_email_tokens(&user.id, crate::api::MFA_TOKEN_PURPOSE, now)
        .await?;
    let stripped = crate::auth::address_proven(&state, &meta, &user).await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("password_reset", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "password reset; all sessions ended");
    let message = if stripped.is_empty() {
        "Your password is changed and every device was signed out. Sign in with the new password."
    } else {
        "Your password is changed and every device was signed out. Because your address was not \
         confirmed before, we also removed the sign-in providers, second factors and app access \
         that were set up on this account: sign in with the new password and set up what you need."
    };
    flash::set(&session, Flash::success(message)).await?;
    Ok(Redirect::to("/login").into_response())
}
