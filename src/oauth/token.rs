//! The token endpoint (RFC 6749 §3.2): parses the grant, authenticates the client, asks the
//! token service, and answers in the RFC 6749 §5 format.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;

use super::client_auth::{Authenticated, authenticate_client};
use super::params::Params;
use super::{OAuthError, TOKEN_PATH};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::clients::{
    Client, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, USER_SCOPES,
};
use crate::tokens::{Narrowing, Redemption, TokenSet};
use crate::web::no_store_json;

pub fn router() -> Router<AppState> {
    Router::new().route(TOKEN_PATH, post(token))
}

async fn token(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&headers, body)?;
    let grant = params.require("grant_type")?;
    let known = matches!(
        grant,
        GRANT_CLIENT_CREDENTIALS | GRANT_AUTHORIZATION_CODE | GRANT_REFRESH_TOKEN
    );
    if !known {
        return Err(OAuthError::unsupported_grant_type(format!(
            "the grant type {grant} is not supported"
        )));
    }
    let auth =
        authenticate_client(&state.tokens, &state.config.secret_key, &headers, &params).await?;
    let tokens = match grant {
        GRANT_AUTHORIZATION_CODE => authorization_code(&state, &meta, auth, &params).await?,
        GRANT_REFRESH_TOKEN => refresh(&state, &meta, auth, &params).await?,
        _ => client_credentials(&state, auth, &params)?,
    };
    Ok(token_response(tokens))
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6).
async fn authorization_code(
    state: &AppState,
    meta: &RequestMeta,
    auth: Authenticated,
    params: &Params,
) -> Result<TokenSet, OAuthError> {
    let client = auth.client;
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the authorization code flow",
        ));
    }
    let redemption = Redemption {
        code: params.require("code")?,
        redirect_uri: params.get("redirect_uri"),
        code_verifier: params.get("code_verifier"),
        resources: params.resources(),
    };
    Ok(state.tokens.redeem_code(meta, &client, &redemption).await?)
}

/// RFC 6749 §6 for a relying app, with rotation (RFC 9700 §4.14.2).
async fn refresh(
    state: &AppState,
    meta: &RequestMeta,
    auth: Authenticated,
    params: &Params,
) -> Result<TokenSet, OAuthError> {
    if !auth.client.allows_grant(GRANT_REFRESH_TOKEN) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use refresh tokens",
        ));
    }
    let token = params.require("refresh_token")?;
    let narrowing = Narrowing {
        scope: params.get("scope"),
        resources: params.resources(),
    };
    let result = state
        .tokens
        .refresh(meta, &auth.client, token, &narrowing)
        .await;
    if let Err(error) = &result {
        crate::audit::record_refresh_failure(state, meta, error).await;
    }
    Ok(result?)
}

/// The scope a request may have: every requested scope must be allowed for the client.
fn granted_scope<'a>(
    client: &'a Client,
    requested: Option<&'a str>,
    default: impl Fn(&str) -> bool,
) -> Result<Vec<&'a str>, OAuthError> {
    match requested {
        Some(requested) => {
            let scopes: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(bad) = scopes.iter().find(|s| !client.allows_scope(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "the scope {bad} is not allowed for this client"
                )));
            }
            Ok(scopes)
        }
        None => Ok(client
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| default(s))
            .collect()),
    }
}

/// RFC 6749 §4.4: a confidential client acting for itself.
fn client_credentials(
    state: &AppState,
    auth: Authenticated,
    params: &Params,
) -> Result<TokenSet, OAuthError> {
    let client = auth.client;
    if !auth.confidential || !client.allows_grant(GRANT_CLIENT_CREDENTIALS) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use client_credentials",
        ));
    }
    let scopes = granted_scope(&client, params.get("scope"), |s| !USER_SCOPES.contains(&s))?;
    if let Some(user_scope) = scopes.iter().find(|s| USER_SCOPES.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "{user_scope} needs a signed-in user"
        )));
    }
    if let Some(bad) = client.unknown_resource(params.resources()) {
        return Err(OAuthError::invalid_target(format!(
            "the resource {bad} is not allowed for this client"
        )));
    }
    Ok(state
        .tokens
        .client_token(&client, &scopes.join(" "), params.resources())?)
}

/// Token responses are never cached (RFC 6749 §5.1).
pub fn token_response(tokens: TokenSet) -> Response {
    no_store_json(tokens.into_json())
}
