//! "Where you are signed in" on `/account`: the person's browser sessions and app sign-ins
//! (token families of the first-party API and of apps with refresh tokens), each of which can be
//! ended from here. The admin's user page and `GET /api/v1/sessions` show the same list.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::format_time;
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::clients::{FIRST_PARTY_CLIENT_ID, FIRST_PARTY_CLIENT_NAME};
use crate::store::{StoreError, TokenFamily, User, UserSession};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser, auth};

/// One signed-in browser or app.
pub struct SessionLine {
    pub id: String,
    /// An app sign-in (tokens) rather than a browser session.
    pub app: bool,
    pub current: bool,
    pub started: String,
    pub last_seen: String,
    pub ip: String,
    pub browser: String,
    pub methods: String,
}

/// A person's sign-ins that have not ended: browser sessions within the idle and lifetime
/// limits (most recently used first), and live token families (likewise).
pub async fn sign_ins_of(
    state: &AppState,
    user_id: &str,
) -> Result<(Vec<UserSession>, Vec<TokenFamily>), StoreError> {
    let now = state.clock.now();
    let idle = state.config.session_idle_timeout.as_secs() as i64;
    let lifetime = state.config.session_max_lifetime.as_secs() as i64;
    let browsers = state
        .store
        .user_sessions_of(user_id, now - idle, now - lifetime)
        .await?;
    let apps = state.store.token_families_of(user_id, now).await?;
    Ok((browsers, apps))
}

/// The name a person knows an app sign-in by: the client's name, "Portcullis API" for the
/// first-party API (which has no client row), else the client id.
pub fn app_name(family: &TokenFamily) -> String {
    match &family.client_name {
        Some(name) => name.clone(),
        None if family.client_id == FIRST_PARTY_CLIENT_ID => FIRST_PARTY_CLIENT_NAME.into(),
        None => family.client_id.clone(),
    }
}

/// The user's sessions that have not timed out, most recent first, then their app sign-ins.
pub async fn sessions_of(
    state: &AppState,
    user: &User,
    current: Option<&str>,
) -> Result<Vec<SessionLine>, AppError> {
    let (browsers, apps) = sign_ins_of(state, &user.id).await?;
    let browsers = browsers.into_iter().map(|s| SessionLine {
        app: false,
        current: current == Some(s.id.as_str()),
        started: format_time(s.created_at),
        last_seen: format_time(s.last_seen_at),
        ip: s.ip.unwrap_or_default(),
        browser: s.user_agent.unwrap_or_else(|| "unknown browser".into()),
        methods: s.methods,
        id: s.id,
    });
    let apps = apps.into_iter().map(|f| {
        let name = app_name(&f);
        SessionLine {
            app: true,
            current: false,
            started: format_time(f.created_at),
            last_seen: format_time(f.last_used_at),
            ip: f.ip.unwrap_or_default(),
            browser: match f.user_agent {
                Some(agent) => format!("{name} ({agent})"),
                None => name,
            },
            methods: String::new(),
            id: f.family_id,
        }
    });
    Ok(browsers.chain(apps).collect())
}

/// Ends a user's browser session or app sign-in by id; false when they have neither.
pub async fn end_sign_in(state: &AppState, user_id: &str, id: &str) -> Result<bool, StoreError> {
    if state.store.delete_user_session(user_id, id).await? {
        return Ok(true);
    }
    state
        .store
        .revoke_family_of(user_id, id, state.clock.now())
        .await
}

#[derive(Deserialize)]
pub struct EndSessionForm {
    #[serde(default)]
    id: String,
}

/// Ends one of the person's other sessions (this one ends with "Sign out").
pub async fn end(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<EndSessionForm>,
) -> Result<Response, AppError> {
    let message = if auth::session_id(&session).await?.as_deref() == Some(form.id.as_str()) {
        Flash::info("To end this session, use “Sign out”.")
    } else if end_sign_in(&state, &user.id, &form.id).await? {
        audit::record(&state, &meta, Event::own("session_ended", &user.id)).await;
        Flash::success("That session is signed out.")
    } else {
        Flash::info("That session had already ended.")
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/account").into_response())
}
