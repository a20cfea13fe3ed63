//! `/account`: the signed-in user's own page. Later features add sections here.

mod password;
mod sign_in_methods;

use sign_in_methods::SignInMethods;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::routing::get;
use time::OffsetDateTime;
use time::macros::format_description;
use tower_sessions::Session;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::app::AppState;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CurrentUser, Layout};
use crate::web::{CsrfForm, auth};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show))
        .route(
            "/account/password",
            get(password::show).post(password::submit),
        )
        .route("/account/apps/revoke", post(revoke_app))
        .route(
            "/account/sign-in-methods/unlink",
            post(sign_in_methods::unlink),
        )
        .route("/account/sign-out-everywhere", post(sign_out_everywhere))
}

#[derive(Template, WebTemplate)]
#[template(path = "account/account.html")]
struct AccountPage {
    layout: Layout,
    email: String,
    email_verified: bool,
    display_name: Option<String>,
    roles: Vec<String>,
    created: String,
    last_login: String,
    apps: Vec<ConnectedApp>,
    methods: SignInMethods,
}

/// An app the person allowed, for the "Connected apps" list.
struct ConnectedApp {
    client_id: String,
    name: String,
    scopes: String,
    granted: String,
}

/// `2026-11-23 09:12 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "unknown".into())
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<AccountPage, AppError> {
    let apps = state
        .store
        .consents_of(&user.id)
        .await?
        .into_iter()
        .map(|(client_id, name, scopes, granted_at)| ConnectedApp {
            client_id,
            name,
            scopes: scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", "),
            granted: format_time(granted_at),
        })
        .collect();
    Ok(AccountPage {
        apps,
        methods: SignInMethods::of(&state, &user).await?,
        layout: Layout::page(&session, Some(&user)).await?,
        created: format_time(user.created_at),
        last_login: user
            .last_login_at
            .map_or_else(|| "never".into(), format_time),
        email: user.email,
        email_verified: user.email_verified,
        display_name: user.display_name,
        roles: user.roles,
    })
}

#[derive(Deserialize)]
struct RevokeAppForm {
    #[serde(default)]
    client_id: String,
}

/// Takes back an app's access: the consent goes, and so do its refresh tokens.
async fn revoke_app(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<RevokeAppForm>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let message = if state
        .store
        .delete_consent(&user.id, &form.client_id)
        .await?
    {
        state
            .store
            .revoke_refresh_tokens_for(&user.id, &form.client_id, now)
            .await?;
        Flash::success("The app no longer has access to your account.")
    } else {
        Flash::info("That app had no access to remove.")
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct EmptyForm {}

/// Ends every session of the person, here and elsewhere, and makes every token inactive.
async fn sign_out_everywhere(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    state
        .store
        .bump_session_epoch(&user.id, state.clock.now())
        .await?;
    auth::sign_out(&session).await?;
    flash::set(
        &session,
        Flash::info("You have signed out on every device."),
    )
    .await?;
    Ok(Redirect::to("/").into_response())
}
