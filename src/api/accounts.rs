//! `POST /api/v1/signup` and `GET /api/v1/whoami`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bearer::ApiUser;
use super::error::{ApiError, ApiJson, BodyErrors, ErrorBody};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::signup::{NewAccount, SignupOutcome, create_account};

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
    /// At least 10 characters, not a common password.
    #[schema(min_length = 10, max_length = 1024)]
    password: String,
    /// Display name, up to 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SignupResponse {
    id: String,
    email: String,
}

/// Creates an account. A confirmation link is mailed; sign in with `/api/v1/login`.
#[utoipa::path(post, path = "/api/v1/signup", tag = "accounts", request_body = SignupRequest,
    responses(
        BodyErrors,
        (status = 201, description = "The account was created", body = SignupResponse),
        (status = 409, description = "An account with this email exists", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address", body = ErrorBody),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<SignupRequest>,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    let account = NewAccount {
        email: &body.email,
        display_name: body.name.as_deref().unwrap_or(""),
        password: &body.password,
    };
    let errors = match create_account(&state, &meta, &account).await? {
        SignupOutcome::Created(user) => {
            crate::verification::send_link(&state, &user).await?;
            let response = SignupResponse {
                id: user.id,
                email: user.email,
            };
            return Ok((StatusCode::CREATED, Json(response)));
        }
        SignupOutcome::Paused(wait) => {
            return Err(ApiError::too_many(
                wait,
                "Too many sign-ups were tried from your network lately. Try again later.",
            ));
        }
        SignupOutcome::Invalid(errors) => errors,
    };
    if errors.email_taken {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "An account with this email already exists. Sign in instead, or use another email.",
        ));
    }
    let fields: BTreeMap<String, String> = [
        ("email", errors.email),
        ("name", errors.display_name),
        ("password", errors.password),
    ]
    .into_iter()
    .filter_map(|(name, message)| Some((name.to_string(), message?)))
    .collect();
    Err(ApiError::fields(fields))
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    id: String,
    email: String,
    name: Option<String>,
    roles: Vec<String>,
    email_verified: bool,
    /// True when signing in needs a second factor.
    mfa_enabled: bool,
}

/// The account the access token belongs to.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = WhoAmI),
        (status = 401, description = "The access token is missing, expired or revoked", body = ErrorBody),
    ))]
pub async fn whoami(caller: ApiUser) -> Result<Json<WhoAmI>, ApiError> {
    let user = caller.user;
    let mfa_enabled = user.totp_enabled || user.email_otp_enabled || user.has_passkey;
    Ok(Json(WhoAmI {
        id: user.id,
        email: user.email,
        name: user.display_name,
        roles: user.roles,
        email_verified: user.email_verified,
        mfa_enabled,
    }))
}
