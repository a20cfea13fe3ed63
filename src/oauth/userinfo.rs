//! The userinfo endpoint (OIDC Core §5.3) and bearer-token checking (RFC 6750).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::USERINFO_PATH;
use super::discovery::issuer;
use super::issue::add_user_claims;
use super::space_list;
use crate::app::AppState;
use crate::store::User;
use crate::tokens::jwt;

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

/// The claims of one of our access tokens if it is active now: signature, type, issuer and
/// expiry hold, and for a person's token, the person is still enabled and has not ended their
/// sessions since. Returns the claims and the user (for person tokens).
pub async fn active_access_token(
    state: &AppState,
    token: &str,
) -> Result<Option<(Value, Option<User>)>, crate::store::StoreError> {
    let Some((header, claims)) = jwt::verify(&state.keys.snapshot(), token) else {
        return Ok(None);
    };
    let now = state.clock.now();
    let valid = header["typ"] == "at+jwt"
        && claims["iss"] == issuer(state).as_str()
        && claims["exp"].as_i64().is_some_and(|exp| exp > now);
    if !valid {
        return Ok(None);
    }
    let (Some(sub), Some(client_id), Some(jti)) = (
        claims["sub"].as_str(),
        claims["client_id"].as_str(),
        claims["jti"].as_str(),
    ) else {
        return Ok(None);
    };
    let generation = crate::store::security_generation();
    if let Some(standing) = state.standing.get(jti, generation) {
        return Ok(standing.map(|user| (claims, user)));
    }
    let standing = check_standing(state, sub, client_id, jti, &claims).await?;
    state.standing.put(jti, generation, standing.clone());
    Ok(standing.map(|user| (claims, user)))
}

/// What the database says of a token that verified: `None` when it was revoked or its person
/// is disabled or signed out everywhere since; `Some(None)` for an active client token;
/// `Some(Some(user))` for an active person's token.
async fn check_standing(
    state: &AppState,
    sub: &str,
    client_id: &str,
    jti: &str,
    claims: &Value,
) -> Result<Option<Option<User>>, crate::store::StoreError> {
    let sep = claims.get("sep");
    // Revoked (RFC 7009) access tokens are denied until they expire.
    if sub == client_id && sep.is_none() {
        let revoked = state.store.is_access_token_revoked(jti).await?;
        return Ok((!revoked).then_some(None));
    }
    // A first-party API token also ends with its sign-in (its token family).
    let holder = match claims["sid"].as_str() {
        Some(family) if client_id == super::clients::FIRST_PARTY_CLIENT_ID => state
            .store
            .find_api_token_holder(sub, jti, family)
            .await?
            .map(|(user, good)| (user, !good)),
        _ => state.store.find_token_holder(sub, jti).await?,
    };
    Ok(match holder {
        Some((user, revoked))
            if !revoked
                && !user.disabled
                && sep.and_then(Value::as_i64) == Some(user.session_epoch) =>
        {
            Some(Some(user))
        }
        _ => None,
    })
}

/// How long a token check is reused. A resource server that introspects (or calls userinfo
/// with) the same token on every request then costs one query a second, not one a request.
const STANDING_TTL: Duration = Duration::from_secs(1);
const STANDING_MAX_ENTRIES: usize = 50_000;

/// Token checks by `jti`, each reused for `STANDING_TTL`. A write on this node that can end
/// tokens (a revocation, a disabled user, a new session epoch) bumps the store's security
/// generation, which drops every entry at once; the same write on another node is seen here
/// within `STANDING_TTL`.
#[derive(Clone, Default)]
pub struct StandingCache(Arc<RwLock<HashMap<String, Standing>>>);

struct Standing {
    checked: Instant,
    generation: u64,
    holder: Option<Option<User>>,
}

impl StandingCache {
    fn get(&self, jti: &str, generation: u64) -> Option<Option<Option<User>>> {
        let entries = self.0.read().ok()?;
        let entry = entries.get(jti)?;
        (entry.generation == generation && entry.checked.elapsed() < STANDING_TTL)
            .then(|| entry.holder.clone())
    }

    fn put(&self, jti: &str, generation: u64, holder: Option<Option<User>>) {
        if let Ok(mut entries) = self.0.write() {
            if entries.len() >= STANDING_MAX_ENTRIES {
                entries.retain(|_, e| e.checked.elapsed() < STANDING_TTL);
                if entries.len() >= STANDING_MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                jti.to_string(),
                Standing {
                    checked: Instant::now(),
                    generation,
                    holder,
                },
            );
        }
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let active = match active_access_token(&state, token).await {
        Ok(active) => active,
        Err(e) => return super::OAuthError::server_error(e).into_response(),
    };
    let Some((claims, Some(user))) = active else {
        return invalid_token("the access token is not active, or not a user's token");
    };
    let scope: Vec<String> = space_list(claims["scope"].as_str().unwrap_or(""));
    if !scope.iter().any(|s| s == "openid") {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "insufficient_scope", "error_description": "userinfo needs the openid scope" })),
        )
            .into_response();
    }
    let mut body = json!({ "sub": user.id });
    add_user_claims(&mut body, &user, &scope);
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
