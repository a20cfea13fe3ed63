//! `/admin`: the installation's users, clients and audit log, for people with the `admin`
//! role. Same pages and protections as the rest (CSRF on every form); a change also needs a
//! sign-in or a confirmation from the last 15 minutes (`account::step_up`).

mod audit_log;
mod clients;
mod overview;
mod users;
mod webhooks;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::store::User;
use crate::web::AppError;
use crate::web::auth::{AuthRejection, CurrentUser};
use crate::web::flash::{self, Flash};

pub fn router() -> Router<AppState> {
    Router::new()
        // The admin panel's "Confirm it is you" form, as on the account pages.
        .route("/admin/confirm", post(crate::account::step_up::confirm))
        .merge(overview::router())
        .merge(users::router())
        .merge(clients::router())
        .merge(audit_log::router())
        .merge(webhooks::router())
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
        // An admin account holds every other account: a password alone is not enough. The
        // first admin (made with the CLI) sets one up on the way in.
        if state.config.admin_require_second_factor
            && !crate::mfa::factors::has_second_factor(state, &user)
                .await
                .map_err(AuthRejection::Error)?
        {
            let session = Session::from_request_parts(parts, state)
                .await
                .map_err(|_| AuthRejection::Error(AppError::Forbidden("No session.")))?;
            let message = Flash::info(
                "Set up a second factor (an authenticator app or codes by email) to open the \
                 admin panel.",
            );
            flash::set(&session, message)
                .await
                .map_err(|e| AuthRejection::Error(e.into()))?;
            return Err(AuthRejection::Login(Redirect::to("/account/security")));
        }
        Ok(Self(user))
    }
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
        crate::account::step_up::step_up_page(&self.state, &self.session, &self.admin, back).await
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
