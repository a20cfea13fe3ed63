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
    error: Option<String>,
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
    let page = ConfirmPage {
        layout: Layout::new(session, Some(user)).await?,
        next: return_to.to_string(),
        totp: factors::totp_enabled(state, user).await?,
        error: None,
    };
    Ok(Some((StatusCode::FORBIDDEN, page).into_response()))
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
        let page = ConfirmPage {
            layout: Layout::new(&session, Some(&user)).await?,
            next: next.as_str().to_string(),
            totp: factors::totp_enabled(&state, &user).await?,
            error: Some(error),
        };
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    auth::confirmed_now(&session, state.clock.now()).await?;
    flash::set(
        &session,
        Flash::success("Thanks. Now repeat what you were doing."),
    )
    .await?;
    Ok(Redirect::to(next.as_str()).into_response())
}
