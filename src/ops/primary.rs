//! When the primary is lost: the node keeps answering what its region's replica can answer
//! (token checks, introspection, userinfo, whoami, discovery, keys) and refuses everything else
//! at once with 503 and `Retry-After`, instead of letting each request wait for a database
//! that does not answer. A watcher asks the primary every second: two questions unanswered
//! (within a second each) and the node treats it as lost, within about three seconds; one
//! answer and it takes writes again (a replica promoted, a DNS name moved).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::store::{PrimaryState, Store};

/// How often the primary is asked, and how long it has to answer.
const ASK_EVERY: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
const UNANSWERED_TO_LOSE: u32 = 2;
/// What a refused request is told to wait before trying again.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Asks the primary every second whether it takes writes; logs each change of state.
pub fn spawn_watcher(
    store: Store,
    region: String,
    metrics: crate::ops::metrics::Metrics,
) -> Option<tokio::task::JoinHandle<()>> {
    if store.backend_name() != "postgres" {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut last = PrimaryState::Writable;
        let mut unanswered = 0;
        metrics.primary_writable(true);
        let mut tick = tokio::time::interval(ASK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut state = store.check_primary(ANSWER_WITHIN).await;
            // One unanswered question can be a busy pool; two in a row is a lost primary.
            if state == PrimaryState::Unreachable {
                unanswered += 1;
                if unanswered < UNANSWERED_TO_LOSE {
                    state = last;
                }
            } else {
                unanswered = 0;
            }
            store.set_primary_state(state);
            if state != last {
                metrics.primary_writable(state == PrimaryState::Writable);
                match state {
                    PrimaryState::Writable => {
                        tracing::info!(%region, "the primary database takes writes again")
                    }
                    lost => tracing::warn!(
                        %region,
                        primary = lost.name(),
                        replica = store.has_replica(),
                        "the primary database does not take writes: refusing them with 503 \
                         until it does"
                    ),
                }
                last = state;
            }
        }
    }))
}

/// The requests a node answers from its region's replica alone.
fn answered_without_primary(path: &str) -> bool {
    use crate::oauth::{INTROSPECT_PATH, JWKS_PATH, USERINFO_PATH};
    matches!(
        path,
        "/health" | "/ready" | "/favicon.ico" | "/api/v1/whoami"
    ) || path == INTROSPECT_PATH
        || path == USERINFO_PATH
        || path == JWKS_PATH
        || path.starts_with("/.well-known/")
        || path.starts_with("/static/")
}

/// While the primary does not take writes, refuses at once what needs it.
pub async fn refuse_what_needs_the_primary(
    State(store): State<Store>,
    request: Request,
    next: Next,
) -> Response {
    if store.primary_state() == PrimaryState::Writable
        || answered_without_primary(request.uri().path())
    {
        return next.run(request).await;
    }
    unavailable_for(request.uri().path())
}

/// 503 with `Retry-After` in the answer format of the part of the server asked.
pub fn unavailable_for(path: &str) -> Response {
    use crate::web::Surface;
    match Surface::of(path) {
        Surface::Api => crate::api::error::ApiError::unavailable().into_response(),
        Surface::Protocol => crate::oauth::OAuthError::temporarily_unavailable().into_response(),
        Surface::Page => crate::web::AppError::Unavailable.into_response(),
    }
}

pub fn with_retry_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
}

/// What `/ready` says of the databases: the status word, and whether to answer 503. On
/// Postgres the primary's state is the watcher's, so `/ready` answers at once even while the
/// primary's region is cut off (a balancer's health check would time out on a live question,
/// and take a region that still serves token checks out).
pub async fn database_readiness(store: &Store) -> (StatusCode, &'static str, serde_json::Value) {
    let primary = match store.backend_name() {
        "postgres" => store.primary_state(),
        _ => store.check_primary(Duration::from_secs(2)).await,
    };
    let replica = store.check_replica(Duration::from_secs(2)).await;
    let detail = serde_json::json!({
        "primary": primary.name(),
        "replica": match replica {
            None => "none",
            Some(true) => "answering",
            Some(false) => "unreachable",
        },
    });
    match (primary, replica) {
        (PrimaryState::Writable, _) => (StatusCode::OK, "ready", detail),
        // Token checks still work here: the balancer keeps sending them.
        (_, Some(true)) | (PrimaryState::ReadOnly, None) => (StatusCode::OK, "read-only", detail),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail),
    }
}

#[cfg(test)]
mod tests {
    use super::answered_without_primary;

    #[test]
    fn only_token_checks_keys_and_health_are_answered_without_the_primary() {
        for path in [
            "/oauth/introspect",
            "/oauth/userinfo",
            "/api/v1/whoami",
            "/oauth/jwks",
            "/.well-known/openid-configuration",
            "/ready",
        ] {
            assert!(answered_without_primary(path), "{path}");
        }
        for path in [
            "/oauth/token",
            "/oauth/revoke",
            "/login",
            "/signup",
            "/api/v1/signup",
            "/api/v1/sessions",
            "/account",
        ] {
            assert!(!answered_without_primary(path), "{path}");
        }
    }
}
