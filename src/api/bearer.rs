//! The signed-in caller of an API endpoint: a Bearer access token (RFC 6750 §2.1) issued to the
//! first-party API, still active.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;

use super::error::ApiError;
use crate::app::AppState;
use crate::oauth::issue::api_audience;
use crate::oauth::userinfo::{active_access_token, bearer};
use crate::store::User;

pub struct ApiUser {
    pub user: User,
    /// The token's claims; `sid` names its sign-in (token family), `jti` the token.
    pub claims: Value,
}

impl ApiUser {
    pub fn sign_in_id(&self) -> Option<&str> {
        self.claims["sid"].as_str()
    }
}

/// The person a Bearer token stands for, if it is an active first-party API token. Tokens
/// issued to relying apps are for another audience (RFC 9068 §4) and are refused.
pub async fn api_user(state: &AppState, token: &str) -> Result<Option<ApiUser>, ApiError> {
    let Some((claims, Some(user))) = active_access_token(state, token).await? else {
        return Ok(None);
    };
    if claims["aud"].as_str() != Some(api_audience(state).as_str()) {
        return Ok(None);
    }
    Ok(Some(ApiUser { user, claims }))
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::invalid_token)?;
        api_user(state, token)
            .await?
            .ok_or_else(ApiError::invalid_token)
    }
}
