//! Revocation (RFC 7009) and introspection (RFC 7662) over the token service.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::client_auth::{ClientAuth, authenticate_client};
use super::params::Params;
use super::{INTROSPECT_PATH, OAuthError, REVOKE_PATH};
use crate::app::AppState;
use crate::web::no_store_json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(REVOKE_PATH, post(revoke))
        .route(INTROSPECT_PATH, post(introspect))
}

/// §2.2: the answer is 200 whether or not the token was known, so nothing leaks.
async fn revoke(
    State(clients): State<ClientAuth>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&headers, body)?;
    let auth = authenticate_client(
        &clients.tokens,
        &clients.config.secret_key,
        &headers,
        &params,
    )
    .await?;
    let token = params.require("token")?;
    clients.tokens.revoke(&auth.client.id, token).await?;
    Ok(Json(json!({})).into_response())
}

/// §2.2: `active: false` for anything not active *for the asking client*; details otherwise.
async fn introspect(
    State(clients): State<ClientAuth>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&headers, body)?;
    let auth = authenticate_client(
        &clients.tokens,
        &clients.config.secret_key,
        &headers,
        &params,
    )
    .await?;
    if !auth.confidential {
        return Err(OAuthError::invalid_client(
            "introspection needs client authentication",
            false,
        ));
    }
    let token = params.require("token")?;
    let body = match clients.tokens.inspect(token).await? {
        Some(details) if details["client_id"].as_str() == Some(auth.client.id.as_str()) => details,
        _ => json!({ "active": false }),
    };
    Ok(no_store_json(body))
}
