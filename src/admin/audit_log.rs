//! `/admin/audit`: the audit log, newest first, filtered by user, event type and time range.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;
use time::macros::format_description;
use time::{Date, PrimitiveDateTime, Time};
use tower_sessions::Session;

use super::Admin;
use super::users::EventRow;
use crate::app::AppState;
use crate::input::encode_query_value;
use crate::store::AuditFilter;
use crate::web::{AppError, Layout};

const PAGE_SIZE: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(browse))
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    /// A user id or email.
    user: Option<String>,
    event: Option<String>,
    /// Days as `YYYY-MM-DD`, UTC; `to` includes the whole day.
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    layout: Layout,
    user: String,
    event: String,
    from: String,
    to: String,
    error: Option<String>,
    events: Vec<EventRow>,
    next_page: Option<String>,
}

fn day_start(text: &str) -> Option<i64> {
    let format = format_description!("[year]-[month]-[day]");
    let date = Date::parse(text.trim(), &format).ok()?;
    Some(
        PrimitiveDateTime::new(date, Time::MIDNIGHT)
            .assume_utc()
            .unix_timestamp(),
    )
}

async fn browse(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
    Query(query): Query<AuditQuery>,
) -> Result<AuditPage, AppError> {
    let text = |v: &Option<String>| v.as_deref().unwrap_or_default().trim().to_string();
    let (user, event, from, to) = (
        text(&query.user),
        text(&query.event),
        text(&query.from),
        text(&query.to),
    );
    let mut error = None;
    let mut day = |value: &str, name: &str| -> Option<i64> {
        if value.is_empty() {
            return None;
        }
        let parsed = day_start(value);
        if parsed.is_none() {
            error = Some(format!("Write the {name} date as YYYY-MM-DD."));
        }
        parsed
    };
    let from_ts = day(&from, "from");
    let to_ts = day(&to, "to").map(|start| start + 24 * 3600 - 1);
    // An email is looked up; anything else is taken as a user id.
    let user_id = if user.contains('@') {
        state
            .store
            .find_user_by_email(&user)
            .await?
            .map(|u| u.id)
            .or(Some(String::new()))
    } else {
        (!user.is_empty()).then(|| user.clone())
    };
    let filter = AuditFilter {
        user_id,
        event: (!event.is_empty()).then(|| event.clone()),
        from: from_ts,
        to: to_ts,
        before_id: query.before,
    };
    let found = state.store.audit_events(&filter, PAGE_SIZE).await?;
    let next_page = (found.len() as i64 == PAGE_SIZE)
        .then(|| found.last().map(|e| e.id))
        .flatten()
        .map(|id| {
            format!(
                "/admin/audit?user={}&event={}&from={}&to={}&before={id}",
                encode_query_value(&user),
                encode_query_value(&event),
                encode_query_value(&from),
                encode_query_value(&to)
            )
        });
    Ok(AuditPage {
        layout: Layout::page(&session, Some(&admin)).await?,
        events: found.into_iter().map(EventRow::from).collect(),
        user,
        event,
        from,
        to,
        error,
        next_page,
    })
}
