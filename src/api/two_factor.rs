//! Setting up an authenticator app over the API: `POST /api/v1/2fa/setup`, then a code to
//! `POST /api/v1/2fa/verify` with the Bearer token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bearer::ApiUser;
use super::error::{ApiError, ApiJson, BodyErrors, ErrorBody};
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::auth::second_factor::{SecondFactorCheck, verify_setup_code};
use crate::auth::{self, Confirmation, Proof};
use crate::mfa::factors::{self, CodeCheck};
use crate::mfa::wrong_codes_message;
use crate::store::User;

#[derive(Serialize, ToSchema)]
pub struct SetupResponse {
    /// The shared secret in base32, for typing into the app.
    secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    otpauth_url: String,
    /// The QR code as an SVG image.
    qr_svg: String,
}

/// A new factor could lock the owner out, so a Bearer token alone is not enough: the request
/// carries the account's password too.
#[derive(Deserialize, ToSchema)]
pub struct SetupRequest {
    /// The account's current password (a step-up: the token may have been copied).
    #[schema(min_length = 1)]
    password: String,
}

/// Starts setting up an authenticator app (TOTP, RFC 6238). It is on once a code from it is
/// sent to `/api/v1/2fa/verify`; starting again replaces a secret not yet confirmed. Needs the
/// Bearer token and the account's password.
#[utoipa::path(post, path = "/api/v1/2fa/setup", tag = "two-factor", security(("bearer" = [])),
    request_body = SetupRequest,
    responses(
        BodyErrors,
        (status = 200, description = "The secret to add to the app", body = SetupResponse),
        (status = 401, description = "The access token is missing, expired or revoked, or the password is wrong", body = ErrorBody),
        (status = 409, description = "An authenticator app is already on", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorBody),
    ))]
pub async fn setup(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: ApiUser,
    ApiJson(body): ApiJson<SetupRequest>,
) -> Result<Json<SetupResponse>, ApiError> {
    let user = caller.user;
    confirm_password(&state, &meta, &user, body.password).await?;
    if factors::totp_enabled(&state, &user).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_already_enabled",
            "An authenticator app is already set up. Remove it on the security page first.",
        ));
    }
    let secret = factors::start_totp(&state, &user).await?;
    let totp = factors::totp(&state, secret, &user.email)?;
    let otpauth_url = totp.get_url();
    Ok(Json(SetupResponse {
        secret: totp.get_secret_base32(),
        qr_svg: factors::qr_svg(&otpauth_url)?,
        otpauth_url,
    }))
}

/// The API's step-up: a Bearer token alone may have been copied, so adding a way in also takes
/// the account's password (under the password throttle).
pub(super) async fn confirm_password(
    state: &AppState,
    meta: &RequestMeta,
    user: &User,
    password: String,
) -> Result<(), ApiError> {
    if password.is_empty() {
        return Err(ApiError::field("password", "Enter your password."));
    }
    match auth::confirm_identity(state, meta, user, Proof::Password(password)).await? {
        Confirmation::Confirmed => Ok(()),
        Confirmation::Wrong => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_password",
            "That is not the account's password.",
        )),
        Confirmation::Paused(wait) => {
            Err(ApiError::too_many(wait, auth::throttle::wait_message(wait)))
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConfirmResponse {
    /// Shown once, when this is the account's first second factor; empty otherwise.
    recovery_codes: Vec<String>,
}

/// Confirms the pending authenticator with a code from it.
pub async fn confirm(
    state: &AppState,
    meta: &RequestMeta,
    user: &User,
    code: &str,
) -> Result<Json<ConfirmResponse>, ApiError> {
    match state.store.totp_factor(&user.id).await? {
        Some(factor) if factor.confirmed_at.is_none() => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "mfa_already_enabled",
                "The authenticator app is already on.",
            ));
        }
        None => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_pending_setup",
                "Start with /api/v1/2fa/setup, then send a code from the app.",
            ));
        }
    }
    let had_factor = factors::has_second_factor(state, user).await?;
    let check = match verify_setup_code(state, user, code).await? {
        SecondFactorCheck::Paused(wait) => {
            return Err(ApiError::too_many(wait, wrong_codes_message(wait)));
        }
        SecondFactorCheck::Checked(check) => check,
    };
    if check != CodeCheck::Accepted {
        let mut error = ApiError::field("code", check.message());
        error.body.error = "invalid_code";
        return Err(error);
    }
    state
        .store
        .confirm_totp(
            &user.id,
            state.clock.now(),
            state.events.for_user(
                crate::events::EventType::SecondFactorAdded,
                user,
                serde_json::json!({ "method": "totp" }),
            ),
        )
        .await?;
    audit::record(state, meta, Event::own("totp_enabled", &user.id)).await;
    tracing::info!(user_id = %user.id, "authenticator app enabled through the API");
    let recovery_codes = if had_factor {
        Vec::new()
    } else {
        factors::issue_recovery_codes(state, user).await?
    };
    Ok(Json(ConfirmResponse { recovery_codes }))
}
