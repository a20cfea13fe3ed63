//! Plumbing shared by every page: errors, CSRF, security headers, the signed-in user, layout.

pub mod auth;
pub mod client_ip;
pub mod csrf;
pub mod error;
pub mod flash;
pub mod form_redirect;
pub mod headers;
pub mod layout;
pub mod server;
pub mod static_files;

pub use auth::{CurrentUser, MaybeUser};
pub use csrf::CsrfForm;
pub use error::AppError;
pub use layout::Layout;

/// The part of the server a path belongs to. It decides the format of an answer given before
/// any handler runs (a 413, a 503): the API's JSON, RFC 6749 JSON for the protocol endpoints,
/// or a page. `/oauth/authorize` and `/oauth/logout` are pages a person sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Api,
    Protocol,
    Page,
}

impl Surface {
    pub fn of(path: &str) -> Self {
        use crate::oauth::{AUTHORIZE_PATH, LOGOUT_PATH};
        if path.starts_with("/api/") {
            Self::Api
        } else if path.starts_with("/oauth/") && path != AUTHORIZE_PATH && path != LOGOUT_PATH {
            Self::Protocol
        } else {
            Self::Page
        }
    }
}

/// A form with nothing but its CSRF token (a button that changes something).
#[derive(serde::Deserialize)]
pub struct EmptyForm {}

/// A JSON answer that holds tokens or describes them: never cached (RFC 6749 §5.1).
pub fn no_store_json(body: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response()
}

/// The Bearer token of a request (RFC 6750 §2.1), if it sent one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}
