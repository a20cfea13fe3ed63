//! Who is signed in. The session holds the user id, when they signed in and when they were last
//! seen; the idle and absolute lifetimes are enforced here against the app clock.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::{AppError, csrf};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::store::{User, UserSession};

const USER_ID: &str = "user_id";
const AUTH_AT: &str = "auth_at";
const LAST_SEEN: &str = "last_seen";
const EPOCH: &str = "epoch";
/// How the user proved who they are (`pwd`, `otp`, …): the later `amr` claim.
const METHODS: &str = "amr";

/// `last_seen` is rewritten at most this often, so browsing is not a database write per click.
const LAST_SEEN_GRANULARITY: i64 = 60;

/// This session's row in the session registry (`user_sessions`).
const SESSION_ID: &str = "sid";

/// A new session id whenever who the session is changes, so an id planted before cannot ride
/// along (session fixation, OWASP ASVS 3.2.1). A session the store never saved has no id yet:
/// it gets a fresh one when first saved, and there is no old record to delete.
async fn renew_id(session: &Session) -> Result<(), AppError> {
    if session.id().is_some() {
        session.cycle_id().await?;
    }
    Ok(())
}

/// Starts a signed-in session: a new session id (no fixation), a new CSRF token, and a row in
/// the registry that lists it (and can end it) on `/account` and the admin's user page.
pub async fn sign_in(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    methods: &[&str],
) -> Result<(), AppError> {
    let now = state.clock.now();
    register(state, meta, session, user, methods, now).await?;
    renew_id(session).await?;
    session.remove_value(PENDING).await?;
    session.insert(USER_ID, &user.id).await?;
    session.insert(AUTH_AT, now).await?;
    session.insert(LAST_SEEN, now).await?;
    session.insert(EPOCH, user.session_epoch).await?;
    session.insert(METHODS, methods).await?;
    csrf::rotate(session).await?;
    Ok(())
}

/// A sign-in that passed the password and waits for the second factor. The session is not
/// signed in meanwhile: `session_user` ignores it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PendingSignIn {
    pub user_id: String,
    pub started_at: i64,
    pub next: String,
    /// How the first step was passed: `pwd`, or `upstream` for a provider like Google.
    #[serde(default = "password_method")]
    pub first_method: String,
    /// The account's session epoch at the first step: a password reset, a disable or "sign out
    /// everywhere" in between ends the half-finished sign-in too.
    #[serde(default = "unknown_epoch")]
    pub epoch: i64,
}

fn unknown_epoch() -> i64 {
    -1
}

fn password_method() -> String {
    "pwd".into()
}

const PENDING: &str = "pending_sign_in";
/// The second step must follow the password within this time (longer than an email code
/// lives, so a slow mail can be replaced by a new one).
pub const PENDING_SECS: i64 = 15 * 60;

pub async fn begin_second_factor(
    session: &Session,
    user: &User,
    first_method: &str,
    next: &str,
    now: i64,
) -> Result<(), AppError> {
    renew_id(session).await?;
    session.remove_value(USER_ID).await?;
    let pending = PendingSignIn {
        user_id: user.id.clone(),
        started_at: now,
        next: next.to_string(),
        first_method: first_method.to_string(),
        epoch: user.session_epoch,
    };
    session.insert(PENDING, pending).await?;
    Ok(())
}

/// The sign-in waiting for its second factor, if it has not timed out.
pub async fn pending_sign_in(
    session: &Session,
    now: i64,
) -> Result<Option<PendingSignIn>, AppError> {
    let pending = session.get::<PendingSignIn>(PENDING).await?;
    Ok(pending.filter(|p| now - p.started_at <= PENDING_SECS))
}

/// Whether the session belongs to a signed-in person (it may no longer be valid: see
/// `session_user` for that).
pub async fn is_signed_in(session: &Session) -> Result<bool, AppError> {
    Ok(session.get_value(USER_ID).await?.is_some())
}

pub async fn clear_pending_sign_in(session: &Session) -> Result<(), AppError> {
    session.remove_value(PENDING).await?;
    Ok(())
}

async fn register(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    methods: &[&str],
    now: i64,
) -> Result<(), AppError> {
    let id = crate::crypto::random_token();
    state
        .store
        .insert_user_session(&UserSession {
            id: id.clone(),
            user_id: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            methods: methods.join(" "),
        })
        .await?;
    session.insert(SESSION_ID, id).await?;
    Ok(())
}

/// This session's id in the registry, if it is signed in.
pub async fn session_id(session: &Session) -> Result<Option<String>, AppError> {
    Ok(session.get::<String>(SESSION_ID).await?)
}

/// After the user's own password change: other sessions end, this one carries on (with a new
/// registry row: the change cleared the old ones).
pub async fn keep_after_epoch_change(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    epoch: i64,
) -> Result<(), AppError> {
    let methods = sign_in_methods(session).await?;
    let methods: Vec<&str> = methods.iter().map(String::as_str).collect();
    register(state, meta, session, user, &methods, state.clock.now()).await?;
    renew_id(session).await?;
    session.insert(EPOCH, epoch).await?;
    Ok(())
}

/// When this session signed in (unix seconds), if it did.
pub async fn auth_time(session: &Session) -> Result<Option<i64>, AppError> {
    Ok(session.get::<i64>(AUTH_AT).await?)
}

const CONFIRMED_AT: &str = "confirmed_at";

/// The last time the person proved who they are in this session: the sign-in, or a later
/// password confirmation before a sensitive change.
pub async fn last_confirmed(session: &Session) -> Result<Option<i64>, AppError> {
    let signed_in = session.get::<i64>(AUTH_AT).await?;
    let confirmed = session.get::<i64>(CONFIRMED_AT).await?;
    Ok(signed_in.max(confirmed))
}

/// Records a password confirmation. The session's lifetime still counts from the sign-in.
pub async fn confirmed_now(session: &Session, now: i64) -> Result<(), AppError> {
    session.insert(CONFIRMED_AT, now).await?;
    Ok(())
}

/// The methods used to sign in to this session, e.g. `["pwd", "otp"]`.
pub async fn sign_in_methods(session: &Session) -> Result<Vec<String>, AppError> {
    Ok(session
        .get::<Vec<String>>(METHODS)
        .await?
        .unwrap_or_default())
}

/// Ends the session: deleted from the store and the registry, cookie removed.
pub async fn sign_out(state: &AppState, session: &Session) -> Result<(), AppError> {
    if let (Some(user_id), Some(id)) = (
        session.get::<String>(USER_ID).await?,
        session.get::<String>(SESSION_ID).await?,
    ) {
        state.store.delete_user_session(&user_id, &id).await?;
    }
    session.flush().await?;
    Ok(())
}

/// The signed-in user, if the session is valid; expired sessions are ended on the way.
pub async fn session_user(session: &Session, state: &AppState) -> Result<Option<User>, AppError> {
    let Some(user_id) = session.get::<String>(USER_ID).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    let auth_at = session.get::<i64>(AUTH_AT).await?.unwrap_or(0);
    let last_seen = session.get::<i64>(LAST_SEEN).await?.unwrap_or(0);
    let config = &state.config;
    let too_old = now - auth_at > config.session_max_lifetime.as_secs() as i64;
    let idle = now - last_seen > config.session_idle_timeout.as_secs() as i64;
    if too_old || idle {
        sign_out(state, session).await?;
        return Ok(None);
    }
    let epoch = session.get::<i64>(EPOCH).await?.unwrap_or(0);
    // Sessions from before the registry have no id: they are signed out once.
    let id = session.get::<String>(SESSION_ID).await?.unwrap_or_default();
    let user = match state
        .store
        .find_session_holder(&user_id, &id, epoch)
        .await?
    {
        // A password reset or change bumps the epoch, ending sessions from before it; a session
        // ended from a list has lost its registry row.
        Some((user, true)) if !user.disabled && user.session_epoch == epoch => user,
        _ => {
            sign_out(state, session).await?;
            return Ok(None);
        }
    };
    if now - last_seen >= LAST_SEEN_GRANULARITY {
        session.insert(LAST_SEEN, now).await?;
        state.store.touch_user_session(&id, now).await?;
    }
    Ok(Some(user))
}

fn session_of(parts: &Parts) -> Result<Session, AppError> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("session layer missing")))
}

/// The signed-in user, or `None` for a visitor.
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = session_of(parts)?;
        Ok(Self(session_user(&session, state).await?))
    }
}

/// The signed-in user; visitors are sent to `/login?next=<this page>`.
pub struct CurrentUser(pub User);

pub enum AuthRejection {
    Login(Redirect),
    Error(AppError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Login(redirect) => redirect.into_response(),
            Self::Error(error) => error.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = session_of(parts).map_err(AuthRejection::Error)?;
        match session_user(&session, state)
            .await
            .map_err(AuthRejection::Error)?
        {
            Some(user) => Ok(Self(user)),
            None => {
                let here = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let next = crate::input::encode_query_value(here);
                Err(AuthRejection::Login(Redirect::to(&format!(
                    "/login?next={next}"
                ))))
            }
        }
    }
}
