//! Passkeys over the API, so first-party apps can offer them: registration (Bearer token and
//! the account's password) and sign-in, alone or as the second step after a password (with
//! the `mfa_token`). Each is a begin/finish pair: begin answers WebAuthn JSON for
//! `navigator.credentials.create()` / `.get()` (`publicKey`) with a `ceremony` handle; finish
//! takes the handle and the credential as WebAuthn JSON (`PublicKeyCredential.toJSON()`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bearer::ApiUser;
use super::error::{ApiError, ApiJson, BodyErrors, ErrorBody};
use super::sign_in::{MFA_TOKEN_PURPOSE, mfa_token_user, sign_in_tokens};
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::mfa::factors;
use crate::passkeys::{self, PasskeyError, Purpose};

impl From<PasskeyError> for ApiError {
    fn from(error: PasskeyError) -> Self {
        let message = error.message();
        match error {
            PasskeyError::Off => Self::new(StatusCode::FORBIDDEN, "passkeys_off", message),
            PasskeyError::Expired => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_ceremony", message)
            }
            PasskeyError::Malformed => {
                Self::field("credential", "Send the credential as WebAuthn JSON.")
            }
            PasskeyError::Refused(_) | PasskeyError::Unknown => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid_passkey", message)
            }
            PasskeyError::Cloned => Self::new(StatusCode::UNAUTHORIZED, "passkey_refused", message),
            PasskeyError::Duplicate => Self::new(StatusCode::CONFLICT, "passkey_exists", message),
            PasskeyError::Store(e) => e.into(),
            PasskeyError::Internal(e) => crate::web::AppError::Internal(e).into(),
        }
    }
}

/// A ceremony begun.
#[derive(Serialize, ToSchema)]
pub struct CeremonyResponse {
    /// Send it back with the credential to finish; valid 10 minutes, once.
    ceremony: String,
    /// The options for `navigator.credentials.create()` or `.get()`, as WebAuthn JSON
    /// (binary values base64url).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

impl From<passkeys::Ceremony> for CeremonyResponse {
    fn from(ceremony: passkeys::Ceremony) -> Self {
        let public_key = ceremony.options["publicKey"].clone();
        Self {
            ceremony: ceremony.handle,
            public_key,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterBeginRequest {
    /// The account's current password (a step-up: the token may have been copied).
    #[schema(min_length = 1)]
    password: String,
}

/// Starts adding a passkey to the caller's account. Needs the Bearer token and the password.
#[utoipa::path(post, path = "/api/v1/passkeys/register/begin", tag = "passkeys",
    security(("bearer" = [])), request_body = RegisterBeginRequest,
    responses(
        BodyErrors,
        (status = 200, description = "The options for navigator.credentials.create()", body = CeremonyResponse),
        (status = 401, description = "The access token is not valid, or the password is wrong", body = ErrorBody),
        (status = 403, description = "Passkeys are off on this server", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorBody),
    ))]
pub async fn register_begin(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: ApiUser,
    ApiJson(body): ApiJson<RegisterBeginRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let user = caller.user;
    if !state.passkeys.enabled() {
        return Err(PasskeyError::Off.into());
    }
    super::two_factor::confirm_password(&state, &meta, &user, body.password).await?;
    let ceremony = passkeys::begin_registration(&state, &user).await?;
    Ok(Json(ceremony.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterFinishRequest {
    ceremony: String,
    /// What the person calls it, such as the device it is on (up to 60 characters).
    #[schema(example = "Ada's phone")]
    name: String,
    /// What `navigator.credentials.create()` gave, as WebAuthn JSON.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterFinishResponse {
    id: String,
    name: String,
    /// Shown once, when this is the account's first second factor; empty otherwise.
    recovery_codes: Vec<String>,
}

/// Finishes adding a passkey (the same Bearer token as the begin).
#[utoipa::path(post, path = "/api/v1/passkeys/register/finish", tag = "passkeys",
    security(("bearer" = [])), request_body = RegisterFinishRequest,
    responses(
        BodyErrors,
        (status = 200, description = "The passkey is added", body = RegisterFinishResponse),
        (status = 400, description = "The ceremony is unknown, expired or used", body = ErrorBody),
        (status = 401, description = "The access token is not valid, or the credential was refused", body = ErrorBody),
        (status = 403, description = "Passkeys are off on this server", body = ErrorBody),
        (status = 409, description = "The passkey is registered already", body = ErrorBody),
    ))]
pub async fn register_finish(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: ApiUser,
    ApiJson(body): ApiJson<RegisterFinishRequest>,
) -> Result<Json<RegisterFinishResponse>, ApiError> {
    let user = caller.user;
    let name =
        passkeys::clean_name(&body.name).map_err(|problem| ApiError::field("name", problem))?;
    let had_factor = factors::has_second_factor(&state, &user).await?;
    let row = passkeys::finish_registration(
        &state,
        &user,
        &body.ceremony,
        &name,
        &body.credential.to_string(),
    )
    .await?;
    audit::record(
        &state,
        &meta,
        Event::own("passkey_added", &user.id).detail(row.name.clone()),
    )
    .await;
    let recovery_codes = if had_factor {
        Vec::new()
    } else {
        factors::issue_recovery_codes(&state, &user).await?
    };
    Ok(Json(RegisterFinishResponse {
        id: row.id,
        name: row.name,
        recovery_codes,
    }))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LoginBeginRequest {
    /// From `/api/v1/login`, for the second step with one of the account's passkeys. Without
    /// it, any passkey of this site signs in (discoverable credentials).
    #[serde(default)]
    mfa_token: Option<String>,
}

/// Starts a sign-in with a passkey, or the second step with one (with an `mfa_token`).
#[utoipa::path(post, path = "/api/v1/passkeys/login/begin", tag = "passkeys",
    request_body = LoginBeginRequest,
    responses(
        BodyErrors,
        (status = 200, description = "The options for navigator.credentials.get()", body = CeremonyResponse),
        (status = 401, description = "The mfa_token is not valid", body = ErrorBody),
        (status = 403, description = "Passkeys are off on this server", body = ErrorBody),
        (status = 404, description = "The account of the mfa_token has no passkey", body = ErrorBody),
    ))]
pub async fn login_begin(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBeginRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let Some(mfa_token) = body.mfa_token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(Json(passkeys::begin_sign_in(&state).await?.into()));
    };
    let (_, user) = mfa_token_user(&state, mfa_token).await?;
    match passkeys::begin_for_user(&state, &user, Purpose::SecondFactor).await? {
        Some(ceremony) => Ok(Json(ceremony.into())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_passkeys",
            "This account has no passkey; use another method.",
        )),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct LoginFinishRequest {
    ceremony: String,
    /// What `navigator.credentials.get()` gave, as WebAuthn JSON.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// The same `mfa_token` as the begin, for the second step.
    #[serde(default)]
    mfa_token: Option<String>,
}

/// Finishes the sign-in: tokens, as `/api/v1/login` gives them.
#[utoipa::path(post, path = "/api/v1/passkeys/login/finish", tag = "passkeys",
    request_body = LoginFinishRequest,
    responses(
        BodyErrors,
        (status = 200, description = "Tokens", body = super::sign_in::TokenResponse),
        (status = 400, description = "The ceremony is unknown, expired or used", body = ErrorBody),
        (status = 401, description = "The passkey or the mfa_token was refused", body = ErrorBody),
        (status = 403, description = "The account is disabled, its email must be confirmed first, or passkeys are off", body = ErrorBody),
    ))]
pub async fn login_finish(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<LoginFinishRequest>,
) -> Result<Response, ApiError> {
    let credential = body.credential.to_string();
    let Some(mfa_token) = body.mfa_token.as_deref().filter(|t| !t.is_empty()) else {
        let verified =
            passkeys::finish(&state, &meta, Purpose::SignIn, &body.ceremony, &credential).await?;
        let user = &verified.user;
        // A passkey is both factors; the rest of what follows a first factor still holds.
        super::sign_in::after_first_factor(&state, user).await?;
        return sign_in_tokens(&state, &meta, user, &[verified.method()]).await;
    };
    let (token_hash, user) = mfa_token_user(&state, mfa_token).await?;
    let verified = passkeys::finish(
        &state,
        &meta,
        Purpose::SecondFactor,
        &body.ceremony,
        &credential,
    )
    .await?;
    if verified.user.id != user.id {
        return Err(PasskeyError::Unknown.into());
    }
    // The token is used up only now, as with a code.
    if state
        .store
        .consume_email_token(&token_hash, MFA_TOKEN_PURPOSE, state.clock.now())
        .await?
        .is_err()
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_token",
            "The mfa_token was already used. Sign in again.",
        ));
    }
    sign_in_tokens(&state, &meta, &user, &["pwd", verified.method()]).await
}
