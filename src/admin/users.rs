//! `/admin/users`: find people (search by email or name prefix, keyset pages), see one person's
//! account, and act on it: disable, enable, mark verified, send a reset mail, reset second
//! factors, grant and revoke roles, revoke a consent, delete.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::{Admin, AdminAction};
use crate::account::format_time;
use crate::app::AppState;
use crate::input::encode_query_value;
use crate::store::{AuditEvent, AuditFilter, User, users_email_key};
use crate::web::flash::Flash;
use crate::web::{AppError, CsrfForm, Layout};

pub const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/{id}", get(show))
        .route("/admin/users/{id}/delete", get(confirm_delete).post(delete))
        .route("/admin/users/{id}/{action}", post(act))
}

/// A row of the list.
struct UserRow {
    id: String,
    email: String,
    name: String,
    verified: bool,
    disabled: bool,
    roles: String,
    created: String,
    last_login: String,
}

impl From<&User> for UserRow {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.display_name.clone().unwrap_or_default(),
            verified: user.email_verified,
            disabled: user.disabled,
            roles: user.roles.join(", "),
            created: format_time(user.created_at),
            last_login: user
                .last_login_at
                .map_or_else(|| "never".into(), format_time),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/users.html")]
struct ListPage {
    layout: Layout,
    query: String,
    users: Vec<UserRow>,
    /// The link to the next page, when there may be one.
    next_page: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
    Query(query): Query<ListQuery>,
) -> Result<ListPage, AppError> {
    let search: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(254)
        .collect();
    let after = query.after.unwrap_or_default();
    let prefix = (!search.is_empty()).then_some(search.as_str());
    let users = state.store.list_users(prefix, &after, PAGE_SIZE).await?;
    let next_page = (users.len() as i64 == PAGE_SIZE)
        .then(|| users.last())
        .flatten()
        .map(|last| {
            format!(
                "/admin/users?q={}&after={}",
                encode_query_value(&search),
                encode_query_value(&users_email_key(&last.email))
            )
        });
    Ok(ListPage {
        layout: Layout::page(&session, Some(&admin)).await?,
        query: search,
        users: users.iter().map(UserRow::from).collect(),
        next_page,
    })
}

/// An event line on the user page and in the audit log.
pub struct EventRow {
    pub time: String,
    pub event: String,
    pub actor: String,
    pub subject: String,
    pub detail: String,
    pub ip: String,
    pub user_agent: String,
}

impl From<AuditEvent> for EventRow {
    fn from(event: AuditEvent) -> Self {
        Self {
            time: format_time(event.happened_at),
            event: event.event,
            actor: event.actor_id.unwrap_or_default(),
            subject: event.subject_id.unwrap_or_default(),
            detail: event.detail.unwrap_or_default(),
            ip: event.ip.unwrap_or_default(),
            user_agent: event.user_agent.unwrap_or_default(),
        }
    }
}

struct Consent {
    client_id: String,
    name: String,
    scopes: String,
    granted: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/user.html")]
struct UserPage {
    layout: Layout,
    user: UserRow,
    is_self: bool,
    roles: Vec<String>,
    totp: bool,
    email_codes: bool,
    recovery_codes_left: i64,
    providers: Vec<String>,
    consents: Vec<Consent>,
    sessions: Vec<crate::account::sessions::SessionLine>,
    events: Vec<EventRow>,
}

async fn find(state: &AppState, id: &str) -> Result<User, AppError> {
    state
        .store
        .find_user_by_id(id)
        .await?
        .ok_or(AppError::NotFound)
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<UserPage, AppError> {
    let user = find(&state, &id).await?;
    let consents = state
        .store
        .consents_of(&user.id)
        .await?
        .into_iter()
        .map(|(client_id, name, scopes, granted_at)| Consent {
            client_id,
            name,
            scopes,
            granted: format_time(granted_at),
        })
        .collect();
    let providers = state
        .store
        .identities_of(&user.id)
        .await?
        .into_iter()
        .map(|i| {
            format!(
                "{} ({})",
                state.upstreams.display_name(&i.provider),
                i.email.unwrap_or(i.subject)
            )
        })
        .collect();
    let filter = AuditFilter {
        user_id: Some(user.id.clone()),
        ..AuditFilter::default()
    };
    let events = state
        .store
        .audit_events(&filter, 10)
        .await?
        .into_iter()
        .map(EventRow::from)
        .collect();
    Ok(UserPage {
        layout: Layout::page(&session, Some(&admin)).await?,
        is_self: user.id == admin.id,
        roles: user.roles.clone(),
        totp: crate::mfa::factors::totp_enabled(&state, &user).await?,
        email_codes: user.email_otp_enabled,
        recovery_codes_left: state.store.unused_recovery_codes(&user.id).await?,
        providers,
        consents,
        events,
        sessions: crate::account::sessions::sessions_of(&state, &user, None).await?,
        user: UserRow::from(&user),
    })
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    session_id: String,
}

/// Role names go into tokens as they are: short, no spaces or control characters.
fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 64
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

async fn act(
    action: AdminAction,
    Path((id, verb)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<Response, AppError> {
    let AdminAction { state, admin, .. } = &action;
    let user = find(state, &id).await?;
    let back = format!("/admin/users/{}", user.id);
    if let Some(page) = action.confirmed(&back).await? {
        return Ok(page);
    }
    let now = state.clock.now();
    let store = &state.store;
    let subject = Some(user.id.as_str());
    let (event, detail, message) = match verb.as_str() {
        "disable" => {
            if user.id == admin.id {
                return Err(AppError::BadRequest(
                    "You cannot disable your own account.".into(),
                ));
            }
            store.set_user_disabled(&user.id, true, now).await?;
            // Sessions and tokens check the flag and the epoch: both end everything at once.
            store.bump_session_epoch(&user.id, now).await?;
            (
                "admin.user_disabled",
                None,
                Flash::success(format!(
                    "{} is disabled: signed out everywhere, tokens inactive.",
                    user.email
                )),
            )
        }
        "enable" => {
            store.set_user_disabled(&user.id, false, now).await?;
            (
                "admin.user_enabled",
                None,
                Flash::success(format!("{} can sign in again.", user.email)),
            )
        }
        "verify-email" => {
            store.set_email_verified(&user.id, now).await?;
            (
                "admin.email_verified",
                None,
                Flash::success(format!("{} is marked verified.", user.email)),
            )
        }
        "send-reset" => {
            let sent = crate::password_reset::send_reset_mail(state, &user).await?;
            let message = match sent {
                Ok(()) => Flash::success(format!("A reset link went to {}.", user.email)),
                Err(e) => {
                    tracing::error!(user_id = %user.id, error = %e, "could not send the reset mail");
                    Flash::error("The mail could not be sent right now. Try again later.")
                }
            };
            ("admin.password_reset_sent", None, message)
        }
        "reset-factors" => {
            store.delete_totp(&user.id).await?;
            store.delete_recovery_codes(&user.id).await?;
            store.set_email_otp_enabled(&user.id, false, now).await?;
            (
                "admin.second_factors_reset",
                None,
                Flash::success(format!(
                    "{} signs in with the password alone until they set up a second factor again.",
                    user.email
                )),
            )
        }
        "roles-add" => {
            let role = form.role.trim().to_lowercase();
            if !valid_role(&role) {
                return Err(AppError::BadRequest(
                    "A role name is 1 to 64 letters, digits, '-', '_', '.' or ':'.".into(),
                ));
            }
            store.add_user_role(&user.id, &role).await?;
            (
                "admin.role_granted",
                Some(role.clone()),
                Flash::success(format!("{} has the role {role}.", user.email)),
            )
        }
        "roles-remove" => {
            let role = form.role.trim().to_string();
            if role == "admin" && user.id == admin.id {
                return Err(AppError::BadRequest(
                    "You cannot take the admin role from yourself.".into(),
                ));
            }
            store.remove_user_role(&user.id, &role).await?;
            (
                "admin.role_revoked",
                Some(role.clone()),
                Flash::success(format!("{} no longer has the role {role}.", user.email)),
            )
        }
        "consents-revoke" => {
            if store.delete_consent(&user.id, &form.client_id).await? {
                store
                    .revoke_refresh_tokens_for(&user.id, &form.client_id, now)
                    .await?;
            }
            (
                "admin.consent_revoked",
                Some(form.client_id.clone()),
                Flash::success("The app's access was taken back."),
            )
        }
        "sessions-revoke" => {
            let ended =
                crate::account::sessions::end_sign_in(state, &user.id, &form.session_id).await?;
            (
                "admin.session_revoked",
                None,
                if ended {
                    Flash::success("That session is signed out.")
                } else {
                    Flash::info("That session had already ended.")
                },
            )
        }
        _ => return Err(AppError::NotFound),
    };
    action.done(event, subject, detail, message, &back).await
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/delete_user.html")]
struct DeletePage {
    layout: Layout,
    user: UserRow,
}

async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<DeletePage, AppError> {
    let user = find(&state, &id).await?;
    Ok(DeletePage {
        layout: Layout::new(&session, Some(&admin)).await?,
        user: UserRow::from(&user),
    })
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm_email: String,
}

async fn delete(
    action: AdminAction,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response, AppError> {
    let AdminAction {
        state,
        session,
        admin,
        ..
    } = &action;
    let user = find(state, &id).await?;
    let back = format!("/admin/users/{}/delete", user.id);
    if let Some(page) = action.confirmed(&back).await? {
        return Ok(page);
    }
    if user.id == admin.id {
        return Err(AppError::BadRequest(
            "You cannot delete your own account here.".into(),
        ));
    }
    if users_email_key(&form.confirm_email) != users_email_key(&user.email) {
        crate::web::flash::set(
            session,
            Flash::error("Type the account's email address to confirm the deletion."),
        )
        .await?;
        return Ok(Redirect::to(&back).into_response());
    }
    state.store.delete_user(&user.id).await?;
    action
        .done(
            "admin.user_deleted",
            Some(&user.id),
            Some(user.email.clone()),
            Flash::success(format!("{} was deleted.", user.email)),
            "/admin/users",
        )
        .await
}
