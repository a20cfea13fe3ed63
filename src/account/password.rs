//! `/account/password`: change the password by entering the current one. Other sessions end;
//! this one continues.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::auth::{Confirmation, Proof};
use crate::password;
use crate::throttle;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser, Layout, auth};

#[derive(Default)]
pub struct Errors {
    current: Option<String>,
    new: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/password.html")]
pub struct PasswordPage {
    layout: Layout,
    email: String,
    errors: Errors,
}

pub async fn show(
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<PasswordPage, AppError> {
    Ok(PasswordPage {
        layout: Layout::new(&session, Some(&user)).await?,
        email: user.email,
        errors: Errors::default(),
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let mut errors = Errors::default();
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    let proof = Proof::Password(form.current_password);
    match crate::auth::confirm_identity(&state, &meta, &user, proof).await? {
        Confirmation::Confirmed => {}
        Confirmation::Wrong => {
            errors.current = Some("That is not your current password.".into());
        }
        Confirmation::Paused(wait) => {
            errors.current = Some(format!(
                "Too many wrong attempts. Wait {} and try again.",
                throttle::minutes(wait)
            ));
            status = StatusCode::TOO_MANY_REQUESTS;
        }
    }
    if let Err(why) = password::check_policy(&form.new_password, &user.email) {
        errors.new = Some(why.into());
    }
    if errors.current.is_some() || errors.new.is_some() {
        let page = PasswordPage {
            layout: Layout::new(&session, Some(&user)).await?,
            email: user.email,
            errors,
        };
        return Ok((status, page).into_response());
    }
    let hash = state.hasher.hash(form.new_password).await?;
    let epoch = state
        .store
        .set_password_hash(
            &user.id,
            &hash,
            state.clock.now(),
            state
                .events
                .about_user(crate::events::EventType::PasswordChanged, &user),
        )
        .await?;
    auth::keep_after_epoch_change(&state, &meta, &session, &user, epoch).await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("password_changed", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "password changed; other sessions ended");
    flash::set(
        &session,
        Flash::success("Your password is changed. Your other devices were signed out."),
    )
    .await?;
    Ok(Redirect::to("/account").into_response())
}
