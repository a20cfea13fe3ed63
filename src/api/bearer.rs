//! The signed-in caller of an API endpoint: a Bearer access token (RFC 6750 §2.1) issued to the
//! first-party API, still active.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::error::ApiError;
use crate::store::User;
use crate::tokens::{ActiveToken, TokenService};
use crate::web::bearer;

pub struct ApiUser {
    pub user: User,
    /// The token; its family names its sign-in.
    pub token: ActiveToken,
}

impl ApiUser {
    pub fn sign_in_id(&self) -> Option<&str> {
        self.token.family()
    }
}

/// The person a Bearer token stands for, if it is an active first-party API token. Tokens
/// issued to relying apps are for another audience (RFC 9068 §4) and are refused.
pub async fn api_user(tokens: &TokenService, token: &str) -> Result<Option<ApiUser>, ApiError> {
    let Some(token) = tokens.check(token).await? else {
        return Ok(None);
    };
    if !token.is_for(&tokens.api_audience()) {
        return Ok(None);
    }
    let Some(user) = token.user.clone() else {
        return Ok(None);
    };
    Ok(Some(ApiUser { user, token }))
}

impl<S> FromRequestParts<S> for ApiUser
where
    TokenService: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::invalid_token)?;
        api_user(&TokenService::from_ref(state), token)
            .await?
            .ok_or_else(ApiError::invalid_token)
    }
}
