//! `/login` and `/logout`.

pub mod second_factor;
pub mod throttle;

pub use throttle::account_key as account_throttle_key;

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::input::NextUrl;
use crate::signup::{NextQuery, next_query};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout, MaybeUser, auth};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(logout))
        .merge(second_factor::router())
}

/// One message for an unknown email and a wrong password, so the form does not tell who has
/// an account.
pub const WRONG_CREDENTIALS: &str = "Wrong email or password.";
pub const ACCOUNT_DISABLED: &str =
    "This account is disabled. Contact the administrator if you think this is a mistake.";

#[derive(Template, WebTemplate)]
#[template(path = "login/login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    next: String,
    next_query: String,
    error: Option<String>,
    providers: Vec<crate::upstream::UpstreamButton>,
}

impl LoginPage {
    async fn new(
        state: &AppState,
        session: &Session,
        email: String,
        next: &NextUrl,
        error: Option<String>,
    ) -> Result<Self, AppError> {
        Ok(Self {
            layout: Layout::new(session, None).await?,
            email,
            next_query: next_query(next),
            next: next.as_str().to_string(),
            error,
            providers: state.upstreams.buttons(),
        })
    }
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(query.next.as_deref());
    if user.is_some() {
        return Ok(Redirect::to(next.as_str()).into_response());
    }
    // OIDC `login_hint`: fill in the email the app suggested.
    let hint: String = query
        .login_hint
        .unwrap_or_default()
        .trim()
        .chars()
        .take(254)
        .collect();
    Ok(LoginPage::new(&state, &session, hint, &next, None)
        .await?
        .into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn submit(
    State(state): State<AppState>,
    meta: RequestMeta,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let email = form.email.trim().to_string();
    if email.is_empty() || form.password.is_empty() {
        let page = LoginPage::new(
            &state,
            &session,
            email,
            &next,
            Some("Enter your email and password.".into()),
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let user = match check_password(&state, &meta, peer.ip(), &email, form.password).await? {
        PasswordCheck::Right(user) => user,
        PasswordCheck::Paused(wait) => {
            let page = LoginPage::new(
                &state,
                &session,
                email,
                &next,
                Some(throttle::wait_message(wait)),
            )
            .await?;
            let mut response = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Ok(response);
        }
        PasswordCheck::Wrong => {
            let page = LoginPage::new(
                &state,
                &session,
                email,
                &next,
                Some(WRONG_CREDENTIALS.into()),
            )
            .await?;
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
    };
    if user.disabled {
        let message = Some(ACCOUNT_DISABLED.into());
        let page = LoginPage::new(&state, &session, email, &next, message).await?;
        return Ok((StatusCode::FORBIDDEN, page).into_response());
    }

    if state.config.require_verified_email && !user.email_verified {
        let sent = crate::verification::send_link_throttled(&state, &user).await?;
        let message = format!(
            "Confirm your email address before you sign in. {}",
            sent.message
        );
        let page = LoginPage::new(&state, &session, email, &next, Some(message)).await?;
        return Ok((StatusCode::FORBIDDEN, page).into_response());
    }

    complete(&state, &meta, &session, &user, "pwd", &next).await
}

/// The outcome of checking an email and password.
pub enum PasswordCheck {
    Right(crate::store::User),
    /// Unknown email or wrong password (one answer for both).
    Wrong,
    /// Too many failures lately for this account or address: seconds to wait.
    Paused(i64),
}

/// Checks a password sign-in under the login throttle, for the page and the API alike. A
/// failure is counted and recorded; a success clears the account's failures.
pub async fn check_password(
    state: &AppState,
    meta: &RequestMeta,
    ip: std::net::IpAddr,
    email: &str,
    password: String,
) -> Result<PasswordCheck, AppError> {
    let account_key = throttle::account_key(email);
    let ip_key = throttle::ip_key(ip);
    let attempt = match throttle::begin(state, &account_key, &ip_key).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            tracing::warn!(%ip, "sign-in paused by throttling");
            return Ok(PasswordCheck::Paused(wait));
        }
    };
    if password.chars().count() > crate::password::MAX_LENGTH {
        return Ok(PasswordCheck::Wrong);
    }
    let user = state.store.find_user_by_email(email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let password_ok = state.hasher.verify(password, hash).await?;
    match user {
        Some(user) if password_ok => {
            attempt.succeeded(state).await?;
            Ok(PasswordCheck::Right(user))
        }
        _ => {
            let failed = Event {
                name: "sign_in_failed",
                actor: None,
                subject: user.as_ref().map(|u| u.id.as_str()),
                detail: Some(email.chars().take(254).collect()),
            };
            audit::record(state, meta, failed).await;
            Ok(PasswordCheck::Wrong)
        }
    }
}

/// After the first step (`pwd`, or `upstream` for a provider like Google): signs the person in,
/// or moves on to the second step when they have a second factor.
pub async fn complete(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &crate::store::User,
    first_method: &str,
    next: &NextUrl,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    if crate::mfa::factors::has_second_factor(state, user).await? {
        auth::begin_second_factor(session, user, first_method, next.as_str(), now).await?;
        return second_factor::start(state, session, user).await;
    }
    auth::sign_in(state, meta, session, user, &[first_method]).await?;
    state.store.record_login(&user.id, now).await?;
    tracing::info!(user_id = %user.id, method = first_method, "signed in");
    audit::record(
        state,
        meta,
        Event::own("sign_in", &user.id).detail(first_method.to_string()),
    )
    .await;
    Ok(Redirect::to(next.as_str()).into_response())
}

#[derive(Deserialize)]
pub struct LogoutForm {}

async fn logout(
    State(state): State<AppState>,
    session: Session,
    CsrfForm(_): CsrfForm<LogoutForm>,
) -> Result<Response, AppError> {
    auth::sign_out(&state, &session).await?;
    flash::set(&session, Flash::info("You have signed out.")).await?;
    Ok(Redirect::to("/").into_response())
}
