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
use crate::input::{Email, NextUrl, mask_email};
use crate::password;
use crate::store::NewUser;
use crate::verification;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout, MaybeUser, auth};

pub fn router() -> Router<AppState> {
    Router::new().route("/signup", get(show).post(submit))
}

#[derive(Default)]
struct SignupErrors {
    email: Option<String>,
    display_name: Option<String>,
    password: Option<String>,
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
    meta: crate::audit::RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let mut errors = SignupErrors::default();
    let email = Email::parse(&form.email)
        .map_err(|e| errors.email = Some(e.into()))
        .ok();
    let display_name = form.display_name.trim().to_string();
    if display_name.chars().count() > 200 {
        errors.display_name = Some("Use at most 200 characters.".into());
    }
    if let Err(e) = password::check_policy(&form.password, form.email.trim()) {
        errors.password = Some(e.into());
    }

    let created = match email {
        Some(email) if errors.display_name.is_none() && errors.password.is_none() => {
            let password_hash = state.hasher.hash(form.password.clone()).await?;
            let new_user = NewUser {
                email: email.as_str().to_string(),
                display_name: (!display_name.is_empty()).then(|| display_name.clone()),
                password_hash: Some(password_hash),
                roles: Vec::new(),
                email_verified: false,
                identity: None,
                now: state.clock.now(),
            };
            match state.store.create_user(new_user).await {
                Ok(user) => Some(user),
                Err(e) if e.is_unique_violation() => {
                    errors.email = Some(
                        "An account with this email already exists. Sign in instead, or use \
                         another email."
                            .into(),
                    );
                    None
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };

    let Some(user) = created else {
        // Re-show the form with what was typed (never the password) and the messages.
        let page = SignupPage {
            layout: Layout::new(&session, None).await?,
            email: form.email.trim().to_string(),
            display_name,
            next_query: next_query(&next),
            next: next.as_str().to_string(),
            errors,
            providers: state.upstreams.buttons(),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };

    crate::audit::record(&state, &meta, crate::audit::Event::own("sign_up", &user.id)).await;
    tracing::info!(user_id = %user.id, "account created");
    let mail_sent = verification::send_link(&state, &user).await?.is_ok();
    let masked = mask_email(&user.email);
    if state.config.require_verified_email {
        // Sign-in waits for the confirmed address.
        let message = if mail_sent {
            Flash::success(format!(
                "Your account is ready. We sent a link to {masked}: confirm your address, then sign in."
            ))
        } else {
            Flash::error(
                "Your account is ready, but we could not send the confirmation email. Try signing \
                 in in a few minutes to get a new link.",
            )
        };
        flash::set(&session, message).await?;
        return Ok(Redirect::to(&format!("/login{}", next_query(&next))).into_response());
    }
    let now = state.clock.now();
    auth::sign_in(&state, &meta, &session, &user, &["pwd"]).await?;
    state.store.record_login(&user.id, now).await?;
    let message = if mail_sent {
        Flash::success(format!(
            "Welcome! Your account is ready. We sent a link to {masked} to confirm your address."
        ))
    } else {
        Flash::error(
            "Welcome! Your account is ready, but we could not send the confirmation email. \
             Send it again from this page in a few minutes.",
        )
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to(next.as_str()).into_response())
}
