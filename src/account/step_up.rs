//! "Confirm it is you": sensitive changes (admin actions, adding a second factor, linking a
//! provider) need a sign-in or a confirmation from the last few minutes. Without one, the change
//! is answered with this page instead of being made; the sign-in service checks the proof.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::auth::{self as sign_in, Confirmation, Proof};
use crate::input::NextUrl;
use crate::mfa::factors;
use crate::store::User;
use crate::web::auth::{self, CurrentUser};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout};

#[derive(Template, WebTemplate)]
#[template(path = "account/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    next: String,
    /// The person can confirm with a code from their (confirmed) authenticator app.
    totp: bool,
    /// The ceremony for confirming with a passkey, when the person has one.
    passkey_options: Option<String>,
    error: Option<String>,
}

/// The confirmation page, answering a change it stopped (403) or a proof that did not hold.
pub async fn confirm_page(
    state: &AppState,
    session: &Session,
    user: &User,
    return_to: &str,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AppError> {
    let passkey_options = if user.has_passkey && state.passkeys.enabled() {
        crate::passkeys::begin_for_user(state, user, crate::passkeys::Purpose::Confirm)
            .await?
            .map(|ceremony| ceremony.into_json())
    } else {
        None
    };
    let page = ConfirmPage {
        layout: Layout::new(session, Some(user)).await?,
        next: return_to.to_string(),
        totp: factors::totp_enabled(state, user).await?,
        passkey_options,
        error,
    };
    Ok((status, page).into_response())
}

/// `None` when the person proved who they are recently; otherwise the page that asks them to,
/// to answer the change with instead of making it. `return_to` is where they repeat it.
pub async fn step_up_page(
    state: &AppState,
    session: &Session,
    user: &User,
    return_to: &str,
) -> Result<Option<Response>, AppError> {
    let confirmed = auth::last_confirmed(session).await?;
    if sign_in::recently_confirmed(confirmed, state.clock.now()) {
        return Ok(None);
    }
    confirm_page(state, session, user, return_to, StatusCode::FORBIDDEN, None)
        .await
        .map(Some)
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn confirm(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let proof = if form.password.is_empty() && !form.code.trim().is_empty() {
        Proof::AuthenticatorCode(form.code)
    } else {
        Proof::Password(form.password)
    };
    let error = match sign_in::confirm_identity(&state, &meta, &user, proof).await? {
        Confirmation::Confirmed => None,
        Confirmation::Paused(wait) => Some(sign_in::throttle::wait_message(wait)),
        Confirmation::Wrong => {
            // Admin confirmations are admin events in the log.
            let name = if next.as_str().starts_with("/admin") {
                "admin.confirm_failed"
            } else {
                "step_up_failed"
            };
            audit::record(&state, &meta, Event::own(name, &user.id)).await;
            Some("That did not match. Check it and try again.".to_string())
        }
    };
    if let Some(error) = error {
        return confirm_page(
            &state,
            &session,
            &user,
            next.as_str(),
            StatusCode::UNAUTHORIZED,
            Some(error),
        )
        .await;
    }
    confirmed(&state, &session, &next).await
}

/// The person proved it is them (with the password, a code or a passkey): the session
/// remembers it, and they go back to repeat the change.
pub async fn confirmed(
    state: &AppState,
    session: &Session,
    next: &NextUrl,
) -> Result<Response, AppError> {
    auth::confirmed_now(session, state.clock.now()).await?;
    flash::set(
        session,
        Flash::success("Thanks. Now repeat what you were doing."),
    )
    .await?;
    Ok(Redirect::to(next.as_str()).into_response())
}
