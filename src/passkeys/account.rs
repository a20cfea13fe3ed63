//! The account's passkeys on `/account/security`: add one (named), rename, remove. Each is a
//! sensitive change: it needs a recent sign-in or confirmation (step-up), and the owner is
//! mailed a notice (the audit event's security notice).

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::{PasskeyListing, clean_name};
use crate::account::step_up::step_up_page;
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::mfa::{back_to_security, factors, finish_enrolment};
use crate::store::User;
use crate::web::flash::Flash;
use crate::web::{AppError, CsrfForm, CurrentUser, Layout};

const SECURITY: &str = "/account/security";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/security/passkeys/new", post(start))
        .route("/account/security/passkeys", post(add))
        .route("/account/security/passkeys/{id}/rename", post(rename))
        .route("/account/security/passkeys/{id}/remove", post(remove))
}

/// The account's passkeys as its pages list them.
pub async fn passkey_listing(
    state: &AppState,
    user: &User,
) -> Result<Vec<PasskeyListing>, AppError> {
    Ok(state
        .store
        .passkeys_of(&user.id)
        .await?
        .iter()
        .map(PasskeyListing::from)
        .collect())
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa/passkey_new.html")]
struct NewPasskeyPage {
    layout: Layout,
    name: String,
    options: String,
}

/// "Add a passkey" with a name: after the step-up, the page that creates it.
async fn start(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, AppError> {
    let name = match clean_name(&form.name) {
        Ok(name) => name,
        Err(problem) => return back_to_security(&session, Flash::error(problem)).await,
    };
    // A new way in could lock the owner out or let someone else in later: it needs the
    // person, not only the session.
    if let Some(page) = step_up_page(&state, &session, &user, SECURITY).await? {
        return Ok(page);
    }
    let ceremony = super::begin_registration(&state, &user).await?;
    Ok(NewPasskeyPage {
        layout: Layout::new(&session, Some(&user)).await?,
        name,
        options: ceremony.into_json(),
    }
    .into_response())
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
}

/// The browser made the passkey: it is checked and stored.
async fn add(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Result<Response, AppError> {
    let name = match clean_name(&form.name) {
        Ok(name) => name,
        Err(problem) => return back_to_security(&session, Flash::error(problem)).await,
    };
    let had_factor = factors::has_second_factor(&state, &user).await?;
    let row =
        match super::finish_registration(&state, &user, &form.ceremony, &name, &form.credential)
            .await
        {
            Ok(row) => row,
            Err(error) if error.is_internal() => return Err(error.into()),
            Err(error) => {
                tracing::info!(user_id = %user.id, %error, "a passkey was not added");
                return back_to_security(&session, Flash::error(error.message())).await;
            }
        };
    audit::record(
        &state,
        &meta,
        Event::own("passkey_added", &user.id).detail(row.name.clone()),
    )
    .await;
    tracing::info!(user_id = %user.id, "passkey added");
    let message = format!("Your passkey “{}” is ready.", row.name);
    finish_enrolment(&state, &session, &user, had_factor, &message).await
}

async fn rename(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, AppError> {
    let name = match clean_name(&form.name) {
        Ok(name) => name,
        Err(problem) => return back_to_security(&session, Flash::error(problem)).await,
    };
    if let Some(page) = step_up_page(&state, &session, &user, SECURITY).await? {
        return Ok(page);
    }
    if !state.store.rename_passkey(&user.id, &id, &name).await? {
        return back_to_security(
            &session,
            Flash::info("That passkey is not on your account."),
        )
        .await;
    }
    audit::record(
        &state,
        &meta,
        Event::own("passkey_renamed", &user.id).detail(name.clone()),
    )
    .await;
    back_to_security(&session, Flash::success(format!("Renamed to “{name}”."))).await
}

async fn remove(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<crate::web::EmptyForm>,
) -> Result<Response, AppError> {
    if let Some(page) = step_up_page(&state, &session, &user, SECURITY).await? {
        return Ok(page);
    }
    let removed = remove_passkey(&state, &user, &id).await?;
    let Some(name) = removed else {
        return back_to_security(
            &session,
            Flash::info("That passkey is not on your account."),
        )
        .await;
    };
    audit::record(
        &state,
        &meta,
        Event::own("passkey_removed", &user.id).detail(name.clone()),
    )
    .await;
    tracing::info!(user_id = %user.id, "passkey removed");
    back_to_security(
        &session,
        Flash::success(format!(
            "The passkey “{name}” was removed. Also delete it from the device or password manager \
             that holds it."
        )),
    )
    .await
}

/// Removes one passkey of `user` (the owner's page and the admin's alike); its name, or `None`
/// when the account has no such passkey. The last factor takes the recovery codes with it.
pub async fn remove_passkey(
    state: &AppState,
    user: &User,
    id: &str,
) -> Result<Option<String>, AppError> {
    let passkeys = state.store.passkeys_of(&user.id).await?;
    let Some(row) = passkeys.iter().find(|p| p.id == id) else {
        return Ok(None);
    };
    let event = state.events.for_user(
        crate::events::EventType::SecondFactorRemoved,
        user,
        json!({ "method": "passkey" }),
    );
    if !state.store.delete_passkey(&user.id, id, event).await? {
        return Ok(None);
    }
    factors::forget_recovery_codes_if_unprotected(state, &user.id).await?;
    Ok(Some(row.name.clone()))
}
