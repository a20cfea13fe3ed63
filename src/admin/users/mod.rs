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

mod actions;

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
        .merge(actions::routes())
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
    passkeys: Vec<crate::passkeys::PasskeyListing>,
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
        passkeys: crate::passkeys::passkey_listing(&state, &user).await?,
        providers,
        consents,
        events,
        sessions: crate::account::sessions::sessions_of(&state, &user, None).await?,
        user: UserRow::from(&user),
    })
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
    let event = state
        .events
        .about_user(crate::events::EventType::UserDeleted, &user);
    state.store.delete_user(&user.id, event).await?;
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
