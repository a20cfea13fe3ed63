//! Plumbing shared by every page: errors, CSRF, security headers, the signed-in user, layout.

pub mod auth;
pub mod client_ip;
pub mod csrf;
pub mod error;
pub mod flash;
pub mod form_redirect;
pub mod headers;
pub mod layout;
pub mod static_files;

pub use auth::{CurrentUser, MaybeUser};
pub use csrf::CsrfForm;
pub use error::AppError;
pub use layout::Layout;
