//! `/signup`: create an account with email and password, then arrive signed in.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::input::{Email, NextUrl, mask_email};
use crate::password;
use crate::store::NewUser;
use crate::throttle::{self, Limit};
use crate::verification;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout, MaybeUser, auth};

pub fn router() -> Router<AppState> {
    Router::new().route("/signup", get(show).post(submit))
}

/// What was wrong with a sign-up, per field.
#[derive(Default)]
pub struct SignupErrors {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub password: Option<String>,
    /// The email belongs to an account already (also explained in `email`).
    pub email_taken: bool,
}

/// A sign-up as typed, from the page or the API.
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
}

pub enum SignupOutcome {
    Created(crate::store::User),
    Invalid(SignupErrors),
    /// Too many sign-ups from this address lately: seconds to wait.
    Paused(i64),
}

/// New accounts per client address: at most `signup_max_per_ip` an hour.
fn signup_limit(state: &AppState) -> Limit {
    Limit {
        name: "signup_ip",
        max: state.config.signup_max_per_ip,
        window_secs: 3600,
    }
}

/// Checks a sign-up and creates the account, for the page and the API alike.
pub async fn create_account(
    state: &AppState,
    meta: &RequestMeta,
    account: &NewAccount<'_>,
) -> Result<SignupOutcome, AppError> {
    let mut errors = SignupErrors::default();
    let email = Email::parse(account.email)
        .map_err(|e| errors.email = Some(e.into()))
        .ok();
    let display_name = account.display_name.trim();
    if display_name.chars().count() > 200 {
        errors.display_name = Some("Use at most 200 characters.".into());
    }
    if let Err(e) = password::check_policy(account.password, account.email.trim()) {
        errors.password = Some(e.into());
    }
    let Some(email) = email.filter(|_| errors.display_name.is_none() && errors.password.is_none())
    else {
        return Ok(SignupOutcome::Invalid(errors));
    };
    let throttle_key = format!("signup:ip:{}", meta.ip.as_deref().unwrap_or("unknown"));
    // Every attempt that gets this far counts, the taken addresses too: otherwise probing
    // which addresses have accounts would be unlimited.
    if let Some(wait) = throttle::take(state, &throttle_key, signup_limit(state)).await? {
        tracing::warn!(ip = ?meta.ip, "sign-up paused by throttling");
        return Ok(SignupOutcome::Paused(wait));
    }
    let password_hash = state.hasher.hash(account.password.to_string()).await?;
    let new_user = NewUser {
        email: email.as_str().to_string(),
        display_name: (!display_name.is_empty()).then(|| display_name.to_string()),
        password_hash: Some(password_hash),
        roles: Vec::new(),
        email_verified: false,
        identity: None,
        now: state.clock.now(),
    };
    let user = match state
        .store
        .create_user(new_user, |user| state.events.user_created(user, "sign_up"))
        .await
    {
        Ok(user) => user,
        Err(e) if e.is_unique_violation() => {
            errors.email = Some(
                "An account with this email already exists. Sign in instead, or use another \
                 email."
                    .into(),
            );
            errors.email_taken = true;
            return Ok(SignupOutcome::Invalid(errors));
        }
        Err(e) => return Err(e.into()),
    };
    crate::audit::record(state, meta, crate::audit::Event::own("sign_up", &user.id)).await;
    tracing::info!(user_id = %user.id, "account created");
    Ok(SignupOutcome::Created(user))
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/signup.html")]
struct SignupPage {
    layout: Layout,
    email: String,
    display_name: String,
    next: String,
    next_query: String,
    errors: SignupErrors,
    providers: Vec<crate::upstream::UpstreamButton>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
    /// OIDC `login_hint`: the email to fill in.
    pub login_hint: Option<String>,
    /// `login` when an app asked for a fresh sign-in (OIDC `prompt=login`, `max_age`): the form
    /// shows even to someone signed in, whose session stays until the new sign-in succeeds.
    pub prompt: Option<String>,
}

/// `?next=…` to carry between the sign-in and sign-up pages; empty for the default.
pub fn next_query(next: &NextUrl) -> String {
    if next.as_str() == "/account" {
        return String::new();
    }
    format!("?next={}", crate::input::encode_query_value(next.as_str()))
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
    Ok(SignupPage {
        layout: Layout::new(&session, None).await?,
        email: String::new(),
        display_name: String::new(),
        next_query: next_query(&next),
        next: next.as_str().to_string(),
        errors: SignupErrors::default(),
        providers: state.upstreams.buttons(),
    }
    .into_response())
}

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn submit(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let account = NewAccount {
        email: &form.email,
        display_name: &form.display_name,
        password: &form.password,
    };
    let errors = match create_account(&state, &meta, &account).await? {
        SignupOutcome::Created(user) => {
            return signed_up(&state, &meta, &session, user, &next).await;
        }
        SignupOutcome::Invalid(errors) => errors,
        SignupOutcome::Paused(wait) => SignupErrors {
            email: Some(format!(
                "Too many sign-ups were tried from your network lately. Wait {} and try \
                 again.",
                throttle::minutes(wait)
            )),
            ..Default::default()
        },
    };
    // Re-show the form with what was typed (never the password) and the messages.
    let page = SignupPage {
        layout: Layout::new(&session, None).await?,
        email: form.email.trim().to_string(),
        display_name: form.display_name.trim().to_string(),
        next_query: next_query(&next),
        next: next.as_str().to_string(),
        errors,
        providers: state.upstreams.buttons(),
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// After the account is made: the confirmation mail, then sign-in (or a wait for the
/// confirmed address).
async fn signed_up(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: crate::store::User,
    next: &NextUrl,
) -> Result<Response, AppError> {
    verification::send_link(state, &user).await?;
    let masked = mask_email(&user.email);
    if state.config.require_verified_email {
        // Sign-in waits for the confirmed address.
        let message = Flash::success(format!(
            "Your account is ready. We sent a link to {masked}: confirm your address, then sign in."
        ));
        flash::set(session, message).await?;
        return Ok(Redirect::to(&format!("/login{}", next_query(next))).into_response());
    }
    let now = state.clock.now();
    auth::sign_in(state, meta, session, &user, &["pwd"]).await?;
    state.store.record_login(&user.id, now).await?;
    let message = Flash::success(format!(
        "Welcome! Your account is ready. We sent a link to {masked} to confirm your address."
    ));
    flash::set(session, message).await?;
    Ok(Redirect::to(next.as_str()).into_response())
}
