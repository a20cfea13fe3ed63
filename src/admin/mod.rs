//! `/admin`: the installation's users, clients and audit log, for people with the `admin`
//! role. Same pages and protections as the rest (CSRF on every form); a change also needs a
//! sign-in or password confirmation from the last 15 minutes.

mod audit_log;
mod clients;
mod users;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::auth::{Confirmation, Proof, confirm_identity};
use crate::input::NextUrl;
use crate::store::User;
use crate::web::auth::{self, AuthRejection, CurrentUser};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout};

/// An admin's sign-in or password confirmation counts as recent for this long.
pub const RECENT_AUTH_SECS: i64 = 15 * 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin",
            get(|_: Admin| async { Redirect::to("/admin/users") }),
        )
        .route("/admin/confirm", post(confirm))
        .merge(users::router())
        .merge(clients::router())
        .merge(audit_log::router())
}

/// A signed-in admin. Visitors are sent to sign in; signed-in people without the role get 403.
pub struct Admin(pub User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(AuthRejection::Error(AppError::Forbidden(
                "This area is for administrators.",
            )));
        }
        Ok(Self(user))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    next: String,
    error: Option<String>,
}

/// `None` when the admin proved who they are recently; otherwise the page that asks for the
/// password, to answer the change with instead of doing it.
pub async fn recent_auth_page(
    state: &AppState,
    session: &Session,
    admin: &User,
    return_to: &str,
) -> Result<Option<Response>, AppError> {
    let confirmed = auth::last_confirmed(session).await?.unwrap_or(0);
    if state.clock.now() - confirmed <= RECENT_AUTH_SECS {
        return Ok(None);
    }
    let page = ConfirmPage {
        layout: Layout::new(session, Some(admin)).await?,
        next: return_to.to_string(),
        error: None,
    };
    Ok(Some((StatusCode::FORBIDDEN, page).into_response()))
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn confirm(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    Admin(admin): Admin,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse(form.next.as_deref().unwrap_or_default())
        .filter(|n| n.as_str().starts_with("/admin"))
        .unwrap_or_else(|| NextUrl::parse_or_default(Some("/admin/users")));
    let proof = Proof::Password(form.password);
    let error = match confirm_identity(&state, &meta, &admin, proof).await? {
        Confirmation::Confirmed => None,
        Confirmation::Paused(wait) => Some(crate::auth::throttle::wait_message(wait)),
        Confirmation::Wrong => {
            audit::record(&state, &meta, Event::own("admin.confirm_failed", &admin.id)).await;
            Some("Wrong password.".to_string())
        }
    };
    if let Some(error) = error {
        let page = ConfirmPage {
            layout: Layout::new(&session, Some(&admin)).await?,
            next: next.as_str().to_string(),
            error: Some(error),
        };
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    auth::confirmed_now(&session, state.clock.now()).await?;
    flash::set(
        &session,
        Flash::success("Thanks. Now repeat what you were doing."),
    )
    .await?;
    Ok(Redirect::to(next.as_str()).into_response())
}

/// What an admin change handler needs, extracted in one go: refuses the change with the
/// password page without a recent sign-in (`confirmed`), otherwise records it in the audit log
/// and returns to a page with a message (`done`).
pub struct AdminAction {
    pub state: AppState,
    pub session: Session,
    pub admin: User,
    pub meta: RequestMeta,
}

impl FromRequestParts<AppState> for AdminAction {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Admin(admin) = Admin::from_request_parts(parts, state).await?;
        let session = parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            AuthRejection::Error(AppError::Internal(anyhow::anyhow!("session layer missing")))
        })?;
        let Ok(meta) = RequestMeta::from_request_parts(parts, state).await;
        Ok(Self {
            state: state.clone(),
            session,
            admin,
            meta,
        })
    }
}

impl AdminAction {
    pub async fn confirmed(&self, back: &str) -> Result<Option<Response>, AppError> {
        recent_auth_page(&self.state, &self.session, &self.admin, back).await
    }

    /// Records the admin's action in the audit log.
    pub async fn record(&self, event: &'static str, subject: Option<&str>, detail: Option<String>) {
        let event = Event {
            name: event,
            actor: Some(&self.admin.id),
            subject,
            detail,
        };
        audit::record(&self.state, &self.meta, event).await;
    }

    /// Records the action and returns to `back` with the message.
    pub async fn done(
        &self,
        event: &'static str,
        subject: Option<&str>,
        detail: Option<String>,
        message: Flash,
        back: &str,
    ) -> Result<Response, AppError> {
        self.record(event, subject, detail).await;
        flash::set(&self.session, message).await?;
        Ok(Redirect::to(back).into_response())
    }
}
