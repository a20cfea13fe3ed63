use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::layout::Layout;

/// Errors a page handler can return. Form mistakes are not errors: handlers re-render the form.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("gone: {0}")]
    Gone(&'static str),
    #[error("request body too large")]
    PayloadTooLarge,
    /// A request refused with its own title and, when there is one, a way forward: a link
    /// that does not work, an app that is not registered, an account that is disabled.
    #[error("{title}: {message}")]
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
        action: Option<(&'static str, &'static str)>,
    },
    /// The database does not take writes now (its primary is lost or being replaced).
    #[error("the database is unavailable")]
    Unavailable,
    /// More sign-ins at once than the password workers can serve in time.
    #[error("too busy to check a password now")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn page(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            title,
            message: message.into(),
            action: None,
        }
    }

    /// The link the page offers instead of the home page.
    pub fn with_action(mut self, label: &'static str, href: &'static str) -> Self {
        if let Self::Page { action, .. } = &mut self {
            *action = Some((label, href));
        }
        self
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::password::HashError> for AppError {
    fn from(e: crate::password::HashError) -> Self {
        match e {
            crate::password::HashError::Busy => Self::Busy,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Internal(anyhow::anyhow!("session store: {e}"))
    }
}

#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: &'static str,
    pub message: String,
    /// The way forward: a label and a link (the home page when `None`).
    pub action: Option<(&'static str, &'static str)>,
}

impl ErrorPage {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            layout: Layout::anonymous(),
            status: status.as_u16(),
            title,
            message: message.into(),
            action: None,
        }
    }

    fn into_response_with(self, status: StatusCode) -> Response {
        match self.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot render the error page");
                (status, self.message).into_response()
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut forward = None;
        let mut database_failure = false;
        let busy = matches!(self, Self::Busy);
        let (status, title, message) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address. Check the link, or start again from the home page."
                    .to_string(),
            ),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, "Not allowed", why.to_string()),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, "Something is wrong with that request", why),
            Self::Gone(why) => (StatusCode::GONE, "No longer available", why.to_string()),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "That was too much data",
                "The form you sent is larger than this server accepts.".to_string(),
            ),
            Self::Page {
                status,
                title,
                message,
                action,
            } => {
                forward = action;
                (status, title, message)
            }
            Self::Internal(cause) if crate::store::unavailable_in(&cause) => {
                tracing::warn!(error = %crate::ops::error_chain(cause.as_ref()), "request refused: the database is unavailable");
                database_failure = true;
                unavailable()
            }
            Self::Unavailable => unavailable(),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy for a moment",
                "Many people are signing in right now. Nothing was lost: wait a few seconds and \
                 try again."
                    .to_string(),
            ),
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed");
                database_failure = crate::ops::metrics::caused_by_database(&cause);
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "We could not finish that. Nothing was lost; please try again in a moment."
                        .to_string(),
                )
            }
        };
        let mut page = ErrorPage::new(status, title, message);
        page.action = forward;
        let mut response = page.into_response_with(status);
        if busy {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::password::BUSY_RETRY_AFTER_SECONDS),
            );
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            crate::ops::primary::with_retry_after(&mut response);
        }
        crate::ops::metrics::mark_failure(&mut response, database_failure);
        response
    }
}

fn unavailable() -> (StatusCode, &'static str, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "Changes are paused for a moment",
        "This service cannot save anything right now, so signing in and changes to accounts \
         wait. Nothing you did before was lost; please try again in a minute."
            .to_string(),
    )
}

/// The router's fallback: every unknown path gets the designed 404 page.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
