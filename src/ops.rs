//! Endpoints for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;

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
/// balancer stops sending traffic here.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    match ping {
        Ok(Ok(())) => sessions_ready(&state).await,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database timed out" })),
        ),
    }
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
