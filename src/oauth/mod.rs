//! The OAuth 2.0 / OpenID Connect provider for relying apps.

pub mod clients;
mod discovery;
pub mod error;
mod token;

use axum::Router;

use crate::app::AppState;

pub use error::OAuthError;

pub const TOKEN_PATH: &str = "/oauth/token";
pub const JWKS_PATH: &str = "/oauth/jwks";

/// Protocol endpoints: no browser session, no CSRF form tokens (clients authenticate instead).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(discovery::router())
        .merge(token::router())
}
