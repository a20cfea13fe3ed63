//! `/account`: the signed-in user's own page. Later features add sections here.

mod password;
pub mod sessions;
mod sign_in_methods;
pub mod step_up;

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
use crate::web::EmptyForm;
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
        .route("/account/sessions/end", post(sessions::end))
        .route(
            "/account/sign-in-methods/unlink",
            post(sign_in_methods::unlink),
        )
        .route("/account/sign-out-everywhere", post(sign_out_everywhere))
        .route("/account/confirm", post(step_up::confirm))
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
    events: Vec<SecurityEvent>,
    sessions: Vec<sessions::SessionLine>,
}

/// A line of "Recent security events".
struct SecurityEvent {
    time: String,
    what: String,
    ip: String,
}

/// Plain words for the events a person sees about their own account.
fn describe(event: &str, detail: Option<&str>) -> String {
    let through_api = detail.is_some_and(|d| d.starts_with("api"));
    match event {
        "sign_in" if through_api => "Signed in to an app (API)",
        "sign_in" => "Signed in",
        "signed_out" => "Signed out of an app (API)",
        "sign_in_failed" => "Failed sign-in attempt",
        "second_factor_failed" => "Wrong second-step code",
        "sign_up" => "Account created",
        "password_changed" => "Password changed",
        "password_reset" => "Password reset by email link",
        "totp_enabled" => "Authenticator app set up",
        "totp_removed" => "Authenticator app removed",
        "passkey_added" => "Passkey added",
        "passkey_renamed" => "Passkey renamed",
        "passkey_removed" => "Passkey removed",
        "passkey_failed" => "A passkey was refused",
        "passkey_clone_suspected" => "A copied passkey was refused",
        "email_codes_enabled" => "Sign-in codes by email turned on",
        "email_codes_disabled" => "Sign-in codes by email turned off",
        "recovery_codes_regenerated" => "New recovery codes made",
        "consent_granted" => "An app was allowed access",
        "consent_revoked" => "An app's access was removed",
        "signed_out_everywhere" => "Signed out everywhere",
        "session_ended" => "A session was signed out from the list",
        "upstream_linked" => "A sign-in provider was linked",
        "upstream_unlinked" => "A sign-in provider was unlinked",
        "refresh_token_reuse" => "An app's sign-in was ended: a token was used twice",
        other if other.starts_with("admin.") => "Changed by an administrator",
        other => other,
    }
    .to_string()
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
        sessions: sessions::sessions_of(
            &state,
            &user,
            auth::session_id(&session).await?.as_deref(),
        )
        .await?,
        events: state
            .store
            .audit_events(
                &crate::store::AuditFilter {
                    user_id: Some(user.id.clone()),
                    ..Default::default()
                },
                10,
            )
            .await?
            .into_iter()
            .filter(|e| e.subject_id.as_deref() == Some(user.id.as_str()))
            .map(|e| SecurityEvent {
                time: format_time(e.happened_at),
                what: describe(&e.event, e.detail.as_deref()),
                ip: e.ip.unwrap_or_default(),
            })
            .collect(),
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
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<RevokeAppForm>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let message = if state
        .store
        .revoke_consent(
            &user.id,
            &form.client_id,
            now,
            state.events.for_user(
                crate::events::EventType::ConsentRevoked,
                &user,
                serde_json::json!({ "client_id": form.client_id }),
            ),
        )
        .await?
    {
        crate::audit::record(
            &state,
            &meta,
            crate::audit::Event::own("consent_revoked", &user.id).detail(form.client_id.clone()),
        )
        .await;
        Flash::success("The app no longer has access to your account.")
    } else {
        Flash::info("That app had no access to remove.")
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/account").into_response())
}

/// Ends every session of the person, here and elsewhere, and makes every token inactive.
async fn sign_out_everywhere(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    state
        .store
        .bump_session_epoch(
            &user.id,
            state.clock.now(),
            state
                .events
                .about_user(crate::events::EventType::SessionsEndedEverywhere, &user),
        )
        .await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("signed_out_everywhere", &user.id),
    )
    .await;
    auth::sign_out(&state, &session).await?;
    flash::set(
        &session,
        Flash::info("You have signed out on every device."),
    )
    .await?;
    Ok(Redirect::to("/").into_response())
}
