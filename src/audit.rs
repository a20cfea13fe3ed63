//! Recording security-relevant events (sign-ins, factor and password changes, token reuse,
//! consents, client changes, admin actions) with who, to whom, when and from where.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::store::AuditEvent;

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect());
        Ok(Self { ip, user_agent })
    }
}

/// One event to record. `actor` did it; `subject` is the user it was done to (often the same).
pub struct Event<'a> {
    pub name: &'static str,
    pub actor: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub detail: Option<String>,
}

impl<'a> Event<'a> {
    /// Something a person did to their own account.
    pub fn own(name: &'static str, user_id: &'a str) -> Self {
        Self {
            name,
            actor: Some(user_id),
            subject: Some(user_id),
            detail: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Stores the event. A failure is logged, not returned: the audit log must not turn a
/// sign-in or a password change into an error page.
pub async fn record(state: &AppState, meta: &RequestMeta, event: Event<'_>) {
    let row = AuditEvent {
        id: 0,
        happened_at: state.clock.now(),
        event: event.name.to_string(),
        actor_id: event.actor.map(str::to_string),
        subject_id: event.subject.map(str::to_string),
        detail: event.detail,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
    };
    if let Err(e) = state.store.insert_audit_event(&row).await {
        tracing::error!(error = %e, event = row.event, "cannot write the audit log");
    }
    state.metrics.audit_event(event.name);
    if let (Some(what), Some(user_id)) = (
        crate::mail::messages::security_notice_text(&row.event),
        row.subject_id.as_deref(),
    ) {
        notify_owner(state, user_id, what, &row).await;
    }
}

/// A refresh that found a rotated token presented again ended that token's family; the audit
/// log says so (RFC 9700 §4.14.2 reuse detection). Other failures are the client's, not news.
pub async fn record_refresh_failure(
    state: &AppState,
    meta: &RequestMeta,
    error: &crate::tokens::RefreshError,
) {
    if let crate::tokens::RefreshError::Reused { user_id, client_id } = error {
        let event = Event {
            name: "refresh_token_reuse",
            actor: None,
            subject: Some(user_id),
            detail: Some(format!("client {client_id}")),
        };
        record(state, meta, event).await;
    }
}

/// Tells the account's owner by mail that how their account is signed in to changed. A mail
/// that cannot be sent is logged; the change itself stands.
async fn notify_owner(state: &AppState, user_id: &str, what: &str, row: &AuditEvent) {
    let user = match state.store.find_user_by_id(user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot find the owner to notify");
            return;
        }
    };
    let when = time::OffsetDateTime::from_unix_timestamp(row.happened_at)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default();
    let reset = format!(
        "{}/password/forgot",
        state.config.public_url.as_str().trim_end_matches('/')
    );
    let mail = crate::mail::messages::security_notice(what, &when, row.ip.as_deref(), &reset);
    if let Err(e) = crate::mail::queue::queue(state, &user.email, &mail).await {
        tracing::warn!(error = %e, %user_id, "cannot queue the security notice");
    }
}
