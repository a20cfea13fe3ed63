use tower_sessions::Session;

use super::AppError;
use super::csrf;
use super::flash::{self, Flash};
use crate::store::User;

/// What every page template needs besides its own content.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub user_email: Option<String>,
    pub is_admin: bool,
    pub csrf_token: String,
    pub flash: Option<Flash>,
}

impl Layout {
    /// For a page with forms: a signed-in person's forms get the session's CSRF token, a
    /// visitor's a visitor token (nothing stored); and takes the flash.
    pub async fn new(session: &Session, user: Option<&User>) -> Result<Self, AppError> {
        let csrf_token = match user {
            Some(_) => csrf::token(session).await?,
            None => csrf::form_token(session).await?,
        };
        Ok(Self {
            user_email: user.map(|u| u.email.clone()),
            is_admin: user.is_some_and(User::is_admin),
            csrf_token,
            flash: flash::take(session).await?,
        })
    }

    /// For error pages, which must render even when the session is unavailable.
    pub fn anonymous() -> Self {
        Self::default()
    }
}

impl Layout {
    /// For a page without forms for visitors: reads the CSRF token if the session has one
    /// (signed-in users always do, for the sign-out button) but never starts a session.
    pub async fn page(session: &Session, user: Option<&User>) -> Result<Self, AppError> {
        let csrf_token = match user {
            Some(_) => csrf::token(session).await?,
            None => String::new(),
        };
        Ok(Self {
            user_email: user.map(|u| u.email.clone()),
            is_admin: user.is_some_and(User::is_admin),
            csrf_token,
            flash: flash::take(session).await?,
        })
    }
}
