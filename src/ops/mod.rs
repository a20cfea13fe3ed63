//! Endpoints for load balancers and orchestrators, and the metrics.

pub mod activity;
pub mod metrics;
pub mod primary;
pub mod telemetry;

use std::time::Duration;

use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::cluster::Node;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// The process is up and serving.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database and the session store (Redis, when configured) answer; 503 otherwise, so a load
/// balancer stops sending traffic here. A node shutting down answers 503 too.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, Json(mut body)) = readiness(&state).await;
    body["node"] = json!(state.node.name());
    body["region"] = json!(state.config.region);
    (status, Json(body))
}

async fn readiness(state: &AppState) -> (StatusCode, Json<Value>) {
    if state.node.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining", "reason": "shutting down" })),
        );
    }
    let (code, status, database) = primary::database_readiness(&state.store).await;
    if code != StatusCode::OK {
        tracing::warn!(%database, "readiness check: database unreachable");
        return (
            code,
            Json(
                json!({ "status": status, "reason": "database unreachable", "database": database }),
            ),
        );
    }
    let (code, Json(mut body)) = sessions_ready(state).await;
    if code == StatusCode::OK {
        // Read-only: token checks are answered from the replica; writes get 503.
        body["status"] = json!(status);
    }
    body["database"] = database;
    (code, Json(body))
}

/// Looks up a session id that does not exist: a round trip to the session store.
async fn sessions_ready(state: &AppState) -> (StatusCode, Json<Value>) {
    use tower_sessions::SessionStore;
    let probe = state.sessions.load(&tower_sessions::session::Id(0));
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: session store unreachable");
            unavailable("session store unreachable")
        }
        Err(_) => unavailable("session store timed out"),
    }
}

/// While draining, every response asks the client to close the connection (RFC 9112 §9.6), so
/// keep-alive clients and proxies open their next one to another node.
pub async fn close_when_draining(
    State(node): State<Node>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if node.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An error with its causes, for logs and the admin panel (reqwest hides the interesting part
/// in `source`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
