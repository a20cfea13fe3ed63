//! `/account`: the signed-in user's own page. Later features add sections here.

mod password;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::routing::get;
use time::OffsetDateTime;
use time::macros::format_description;
use tower_sessions::Session;

use crate::app::AppState;
use crate::web::{AppError, CurrentUser, Layout};

pub fn router() -> Router<AppState> {
    Router::new().route("/account", get(show)).route(
        "/account/password",
        get(password::show).post(password::submit),
    )
}

#[derive(Template, WebTemplate)]
#[template(path = "account/account.html")]
struct AccountPage {
    layout: Layout,
    email: String,
    email_verified: bool,
    display_name: Option<String>,
    roles: Vec<String>,
    created: String,
    last_login: String,
}

/// `2026-11-23 09:12 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "unknown".into())
}

async fn show(session: Session, CurrentUser(user): CurrentUser) -> Result<AccountPage, AppError> {
    Ok(AccountPage {
        layout: Layout::page(&session, Some(&user)).await?,
        created: format_time(user.created_at),
        last_login: user
            .last_login_at
            .map_or_else(|| "never".into(), format_time),
        email: user.email,
        email_verified: user.email_verified,
        display_name: user.display_name,
        roles: user.roles,
    })
}
