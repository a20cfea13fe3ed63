//! Revocation (RFC 7009) and introspection (RFC 7662).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::discovery::issuer;
use super::token::{Params, authenticate_client};
use super::userinfo::active_access_token;
use super::{INTROSPECT_PATH, OAuthError, REVOKE_PATH};
use crate::app::AppState;
use crate::crypto;
use crate::store::StoreError;
use crate::tokens::jwt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(REVOKE_PATH, post(revoke))
        .route(INTROSPECT_PATH, post(introspect))
}

/// §2.2: the answer is 200 whether or not the token was known, so nothing leaks.
async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&headers, body)?;
    let auth = authenticate_client(&state, &headers, &params).await?;
    let token = params.require("token")?;
    let now = state.clock.now();
    // Our refresh tokens are opaque base64url; anything with dots can only be a JWT.
    if let Some(row) = find_refresh_token(&state, token).await? {
        if row.client_id == auth.client.id {
            state
                .store
                .revoke_refresh_family(&row.family_id, now)
                .await?;
        }
    } else if let Some((_, claims)) = jwt::verify(&state.keys.snapshot(), token) {
        let same_client = claims["client_id"].as_str() == Some(auth.client.id.as_str());
        if let (true, Some(jti), Some(exp)) =
            (same_client, claims["jti"].as_str(), claims["exp"].as_i64())
        {
            state.store.revoke_access_token(jti, exp).await?;
        }
    }
    Ok(Json(json!({})).into_response())
}

/// §2.2: `active: false` for anything not active *for the asking client*; details otherwise.
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&headers, body)?;
    let auth = authenticate_client(&state, &headers, &params).await?;
    if !auth.confidential {
        return Err(OAuthError::invalid_client(
            "introspection needs client authentication",
            false,
        ));
    }
    let token = params.require("token")?;
    let answer = inspect(&state, token).await?;
    let inactive = json!({ "active": false });
    let body = match answer {
        Some(details) if details["client_id"].as_str() == Some(auth.client.id.as_str()) => details,
        _ => inactive,
    };
    Ok(super::token::token_response(body))
}

async fn inspect(state: &AppState, token: &str) -> Result<Option<Value>, StoreError> {
    let now = state.clock.now();
    if let Some(row) = find_refresh_token(state, token).await? {
        let live = row.revoked_at.is_none() && row.rotated_at.is_none() && row.expires_at > now;
        let user = state.store.find_user_by_id(&row.user_id).await?;
        let user_ok = user.is_some_and(|u| !u.disabled && u.session_epoch == row.session_epoch);
        if !(live && user_ok) {
            return Ok(None);
        }
        return Ok(Some(json!({
            "active": true,
            "token_type": "refresh_token",
            "sub": row.user_id,
            "client_id": row.client_id,
            "scope": row.scope,
            "iat": row.created_at,
            "exp": row.expires_at,
            "iss": issuer(state),
        })));
    }
    let Some((claims, _)) = active_access_token(state, token).await? else {
        return Ok(None);
    };
    Ok(Some(json!({
        "active": true,
        "token_type": "access_token",
        "sub": claims["sub"],
        "client_id": claims["client_id"],
        "scope": claims["scope"],
        "iat": claims["iat"],
        "exp": claims["exp"],
        "iss": claims["iss"],
        "jti": claims["jti"],
    })))
}

/// The refresh token `token` stands for, if any. Our refresh tokens are opaque base64url: a
/// token with dots can only be a JWT, and is not looked up.
async fn find_refresh_token(
    state: &AppState,
    token: &str,
) -> Result<Option<crate::store::RefreshTokenRow>, StoreError> {
    if token.contains('.') {
        return Ok(None);
    }
    state
        .store
        .find_refresh_token(&crypto::sha256_hex(token))
        .await
}
