//! The userinfo endpoint (OIDC Core §5.3), with bearer errors in the RFC 6750 §3 format.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::USERINFO_PATH;
use crate::app::AppState;
use crate::tokens::TokenService;
use crate::tokens::claims::add_user_claims;
use crate::web::bearer;

pub fn router() -> Router<AppState> {
    Router::new().route(USERINFO_PATH, get(userinfo).post(userinfo))
}

/// RFC 6750 §3: 401 with a `WWW-Authenticate: Bearer` challenge.
fn invalid_token(description: &str) -> Response {
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "invalid_token", "error_description": description })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

async fn userinfo(State(tokens): State<TokenService>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let active = match tokens.check(token).await {
        Ok(active) => active,
        Err(e) => return super::OAuthError::server_error(e).into_response(),
    };
    // RFC 9068 §4: userinfo is a resource of the issuer; a token for another resource
    // (RFC 8707) is not for it.
    let Some(active) = active.filter(|a| a.is_for(tokens.issuer())) else {
        return invalid_token("the access token is not active, or not for this server");
    };
    let Some(user) = &active.user else {
        return invalid_token("the access token is not a user's token");
    };
    let scope = active.scope();
    if !scope.iter().any(|s| s == "openid") {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "insufficient_scope", "error_description": "userinfo needs the openid scope" })),
        )
            .into_response();
    }
    let mut body = json!({ "sub": user.id });
    add_user_claims(&mut body, user, &scope);
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
