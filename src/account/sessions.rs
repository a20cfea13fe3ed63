//! "Where you are signed in" on `/account`: the person's browser sessions, each of which can be
//! ended from here. The admin's user page shows the same list.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::format_time;
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::store::User;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser, auth};

/// One signed-in browser.
pub struct SessionLine {
    pub id: String,
    pub current: bool,
    pub started: String,
    pub last_seen: String,
    pub ip: String,
    pub browser: String,
    pub methods: String,
}

/// The user's sessions that have not timed out, most recent first.
pub async fn sessions_of(
    state: &AppState,
    user: &User,
    current: Option<&str>,
) -> Result<Vec<SessionLine>, AppError> {
    let now = state.clock.now();
    let idle = state.config.session_idle_timeout.as_secs() as i64;
    let lifetime = state.config.session_max_lifetime.as_secs() as i64;
    Ok(state
        .store
        .user_sessions_of(&user.id, now - idle, now - lifetime)
        .await?
        .into_iter()
        .map(|s| SessionLine {
            current: current == Some(s.id.as_str()),
            started: format_time(s.created_at),
            last_seen: format_time(s.last_seen_at),
            ip: s.ip.unwrap_or_default(),
            browser: s.user_agent.unwrap_or_else(|| "unknown browser".into()),
            methods: s.methods,
            id: s.id,
        })
        .collect())
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
    } else if state.store.delete_user_session(&user.id, &form.id).await? {
        audit::record(&state, &meta, Event::own("session_ended", &user.id)).await;
        Flash::success("That session is signed out.")
    } else {
        Flash::info("That session had already ended.")
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/account").into_response())
}
