//! The OAuth 2.0 / OpenID Connect provider for relying apps.

mod authorize;
mod client_auth;
mod consent;
mod discovery;
pub mod error;
mod logout;
mod params;
mod revocation;
mod token;
mod userinfo;

use axum::Router;

use crate::app::AppState;

pub use error::OAuthError;

pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
pub const TOKEN_PATH: &str = "/oauth/token";
pub const USERINFO_PATH: &str = "/oauth/userinfo";
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const LOGOUT_PATH: &str = "/oauth/logout";
pub const JWKS_PATH: &str = "/oauth/jwks";

/// Pages of the flow a person sees (authorization, consent): they use the browser session.
pub fn pages_router() -> Router<AppState> {
    authorize::router().merge(logout::router())
}

/// Protocol endpoints: no browser session, no CSRF form tokens (clients authenticate instead).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(discovery::router())
        .merge(token::router())
        .merge(userinfo::router())
        .merge(revocation::router())
}
