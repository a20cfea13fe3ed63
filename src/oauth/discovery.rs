//! `/.well-known/openid-configuration` (OIDC Discovery §3) and the JWKS (RFC 7517).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{
    AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, LOGOUT_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};
use crate::app::AppState;
use crate::tokens::TokenService;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(configuration))
        .route(JWKS_PATH, get(jwks))
}

async fn configuration(State(tokens): State<TokenService>) -> Response {
    let issuer = tokens.issuer();
    let alg = tokens.signing_alg().name();
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
                        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "end_session_endpoint": format!("{issuer}{LOGOUT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        // RFC 8707 has no metadata name of its own; this one follows the RFC's wording.
        "resource_indicators_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "id_token_signing_alg_values_supported": [alg],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "amr", "at_hash",
            "email", "email_verified", "name", "preferred_username", "updated_at"],
    });
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(document),
    )
        .into_response()
}

/// Cached by clients for 5 minutes; new keys are published before they sign anything.
async fn jwks(State(tokens): State<TokenService>) -> Response {
    (
        [
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        tokens.jwks_body(),
    )
        .into_response()
}
