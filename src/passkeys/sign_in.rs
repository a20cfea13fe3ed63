//! Proving with a passkey on the pages: signing in with one alone (`/login`), the second step
//! after a password (`/login/verify`), and confirming it is the person before a sensitive
//! change. The page's script runs the ceremony and posts its answer as a form.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;
use tower_sessions::Session;

use super::{PasskeyError, Purpose};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::Step;
use crate::input::NextUrl;
use crate::login::second_factor;
use crate::web::{AppError, CsrfForm, CurrentUser, EmptyForm};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/passkey/options", post(sign_in_options))
        .route("/login/passkey", post(sign_in))
        .route("/login/verify/passkey", post(second_step))
        .route("/account/confirm/passkey", post(confirm))
}

/// What the page's script posts after the ceremony.
#[derive(Deserialize)]
pub(super) struct PasskeyForm {
    #[serde(default)]
    pub ceremony: String,
    #[serde(default)]
    pub credential: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// A new sign-in ceremony for the login page's button or autofill.
async fn sign_in_options(
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    let ceremony = super::begin_sign_in(&state).await?;
    Ok(Json(ceremony.into_value()).into_response())
}

async fn sign_in(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<PasskeyForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let refused = |error: PasskeyError| async {
        if error.is_internal() {
            return Err(AppError::from(error));
        }
        crate::login::page_with_error(
            &state,
            &session,
            &next,
            StatusCode::UNAUTHORIZED,
            error.message(),
        )
        .await
    };
    let verified = match super::finish(
        &state,
        &meta,
        Purpose::SignIn,
        &form.ceremony,
        &form.credential,
    )
    .await
    {
        Ok(verified) => verified,
        Err(error) => return refused(error).await,
    };
    let user = &verified.user;
    // A passkey is both factors: the rest of what follows a first factor still holds.
    if let Err(refused) =
        crate::login::after_first_factor(&state, &session, user, String::new(), &next).await?
    {
        return Ok(refused);
    }
    crate::login::complete(
        &state,
        &meta,
        &session,
        user,
        Step::SignedIn,
        verified.method(),
        &next,
    )
    .await
}

/// The second step with a passkey, after the password.
async fn second_step(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<PasskeyForm>,
) -> Result<Response, AppError> {
    let (pending, user) = match second_factor::pending(&state, &session).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let result = super::finish(
        &state,
        &meta,
        Purpose::SecondFactor,
        &form.ceremony,
        &form.credential,
    )
    .await;
    let verified = match result {
        Ok(verified) if verified.user.id == user.id => verified,
        Ok(_) => return Err(PasskeyError::Unknown.into()),
        Err(error) if error.is_internal() => return Err(error.into()),
        Err(error) => {
            let page = second_factor::page(
                &state,
                &session,
                &user,
                Some("passkey"),
                Some(error.message().into()),
            )
            .await?;
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
    };
    let methods = [pending.first_method.as_str(), verified.method()];
    second_factor::signed_in(&state, &meta, &session, &user, &methods).await?;
    tracing::info!(user_id = %user.id, "signed in with a passkey as the second step");
    let next = NextUrl::parse_or_default(Some(&pending.next));
    Ok(Redirect::to(next.as_str()).into_response())
}

/// "Confirm it is you" with a passkey instead of the password.
async fn confirm(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<PasskeyForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let result = super::finish(
        &state,
        &meta,
        Purpose::Confirm,
        &form.ceremony,
        &form.credential,
    )
    .await;
    match result {
        Ok(verified) if verified.user.id == user.id => {}
        Ok(_) => return Err(PasskeyError::Unknown.into()),
        Err(error) if error.is_internal() => return Err(error.into()),
        Err(error) => {
            return crate::account::step_up::confirm_page(
                &state,
                &session,
                &user,
                next.as_str(),
                StatusCode::UNAUTHORIZED,
                Some(error.message().into()),
            )
            .await;
        }
    }
    crate::account::step_up::confirmed(&state, &session, &next).await
}
