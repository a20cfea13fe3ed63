//! `/.well-known/openid-configuration` (OIDC Discovery §3) and the JWKS (RFC 7517).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::clients::MAX_ACCESS_TTL;
use super::{JWKS_PATH, TOKEN_PATH};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(configuration))
        .route(JWKS_PATH, get(jwks))
}

/// The issuer is the public URL without a trailing slash, as relying parties compare it exactly.
pub fn issuer(state: &AppState) -> String {
    state
        .config
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string()
}

async fn configuration(State(state): State<AppState>) -> Response {
    let issuer = issuer(&state);
    let alg = state.config.signing_alg.name();
    let document = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "id_token_signing_alg_values_supported": [alg],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "email_verified", "name"],
    });
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(document),
    )
        .into_response()
}

/// Cached by clients for 5 minutes; new keys are published before they sign anything.
async fn jwks(State(state): State<AppState>) -> Response {
    let set = state
        .keys
        .snapshot()
        .jwks(state.clock.now(), MAX_ACCESS_TTL);
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(set)).into_response()
}
