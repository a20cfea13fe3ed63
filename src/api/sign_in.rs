//! `POST /api/v1/login`, its second step `POST /api/v1/2fa/verify` (with an `mfa_token`) and
//! `POST /api/v1/2fa/email/send`. The same throttles and factors as the hosted sign-in.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bearer::api_user;
use super::error::{ApiError, ApiJson, BodyErrors, ErrorBody};
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::auth::second_factor::{SecondFactorCheck, verify_second_factor};
use crate::auth::{self, PasswordCheck, Step, Subject};
use crate::crypto;
use crate::login::second_factor::{self, Method};
use crate::login::{ACCOUNT_DISABLED, WRONG_CREDENTIALS};
use crate::mfa::factors::{self, CodeCheck};
use crate::mfa::{CODE_MAILS, code_mails_key, code_mails_message, wrong_codes_message};
use crate::store::{TokenProblem, User};
use crate::throttle;
use crate::web::{bearer, no_store_json};

/// `mfa_token`s live 5 minutes and complete one sign-in.
const MFA_TOKEN_SECS: i64 = 5 * 60;
pub const MFA_TOKEN_PURPOSE: &str = "api_mfa";

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com", min_length = 1)]
    email: String,
    #[schema(min_length = 1)]
    password: String,
}

/// Tokens for the first-party API.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (RFC 9068) for the audience `<public URL>/api/v1`.
    access_token: String,
    /// Opaque; rotated on every refresh.
    refresh_token: String,
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds the access token lives.
    #[schema(example = 900)]
    expires_in: i64,
}

/// The password was right and the account has a second factor.
#[derive(Serialize, ToSchema)]
pub struct MfaChallenge {
    mfa_required: bool,
    /// Single use, valid 5 minutes; send it to `/api/v1/2fa/verify` with a code.
    mfa_token: String,
    /// Any of `totp`, `email`, `passkey` (finish with `/api/v1/passkeys/login/…`),
    /// `recovery_code`.
    methods: Vec<String>,
}

/// The two answers of `/api/v1/login`, for the document (the token body itself is built by the
/// token service).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum LoginResponse {
    Tokens(TokenResponse),
    SecondFactor(MfaChallenge),
}

/// Signs in with email and password: tokens, or a second step when the account has one.
#[utoipa::path(post, path = "/api/v1/login", tag = "sign-in", request_body = LoginRequest,
    responses(
        BodyErrors,
        (status = 200, description = "Tokens, or `mfa_required` with an `mfa_token`", body = LoginResponse),
        (status = 401, description = "Wrong email or password (one answer for both)", body = ErrorBody),
        (status = 403, description = "The account is disabled, or its email must be confirmed first", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = body.email.trim();
    if email.is_empty() {
        return Err(ApiError::field("email", "Enter your email address."));
    }
    if body.password.is_empty() {
        return Err(ApiError::field("password", "Enter your password."));
    }
    let user =
        match auth::verify_password(&state, &meta, Subject::Email(email), body.password).await? {
            PasswordCheck::Right(user) => user,
            PasswordCheck::Wrong => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    WRONG_CREDENTIALS,
                ));
            }
            PasswordCheck::Paused(wait) => {
                return Err(ApiError::too_many(wait, auth::throttle::wait_message(wait)));
            }
        };
    if after_first_factor(&state, &user).await? == Step::SignedIn {
        return sign_in_tokens(&state, &meta, &user, &["pwd"]).await;
    }
    let token =
        crate::mail::single_use_token(&state, &user.id, MFA_TOKEN_PURPOSE, MFA_TOKEN_SECS).await?;
    let mut methods = Vec::new();
    if factors::totp_enabled(&state, &user).await? {
        methods.push("totp".to_string());
    }
    if user.email_otp_enabled {
        methods.push("email".to_string());
    }
    if user.has_passkey && state.passkeys.enabled() {
        methods.push("passkey".to_string());
    }
    if state.store.unused_recovery_codes(&user.id).await? > 0 {
        methods.push("recovery_code".to_string());
    }
    let challenge = MfaChallenge {
        mfa_required: true,
        mfa_token: token,
        methods,
    };
    Ok(no_store_json(serde_json::json!(challenge)))
}

/// What follows a first factor, as the sign-in service decides: a disabled account or an
/// address to confirm first is answered with its error here.
pub(super) async fn after_first_factor(state: &AppState, user: &User) -> Result<Step, ApiError> {
    match auth::after_first_factor(state, user).await? {
        Step::Disabled => Err(disabled()),
        Step::MustVerifyEmail => {
            let sent = crate::verification::send_link_throttled(state, user).await?;
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                format!(
                    "Confirm your email address before you sign in. {}",
                    sent.message
                ),
            ))
        }
        step => Ok(step),
    }
}

fn disabled() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "account_disabled", ACCOUNT_DISABLED)
}

/// Issues a new sign-in (token family) to the first-party API and records it.
pub(super) async fn sign_in_tokens(
    state: &AppState,
    meta: &RequestMeta,
    user: &User,
    methods: &[&str],
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    let tokens = state.tokens.sign_in(meta, user, &methods).await?;
    state.store.record_login(&user.id, now).await?;
    let detail = format!("api {}", methods.join(" "));
    audit::record(state, meta, Event::own("sign_in", &user.id).detail(detail)).await;
    tracing::info!(user_id = %user.id, "signed in through the API");
    Ok(no_store_json(tokens.into_json()))
}

/// The user a live `mfa_token` stands for.
pub(super) async fn mfa_token_user(
    state: &AppState,
    token: &str,
) -> Result<(String, User), ApiError> {
    let invalid =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_mfa_token", message);
    let hash = crypto::sha256_hex(token);
    let now = state.clock.now();
    let user_id = match state
        .store
        .check_email_token(&hash, MFA_TOKEN_PURPOSE, now)
        .await?
    {
        Ok(user_id) => user_id,
        Err(TokenProblem::Expired) => {
            return Err(invalid(
                "The mfa_token has expired (after 5 minutes). Sign in again.",
            ));
        }
        Err(TokenProblem::Used) => {
            return Err(invalid("The mfa_token was already used. Sign in again."));
        }
        Err(TokenProblem::Unknown) => return Err(invalid("The mfa_token is not valid.")),
    };
    match state.store.find_user_by_id(&user_id).await? {
        Some(user) if !user.disabled => Ok((hash, user)),
        Some(_) => Err(disabled()),
        None => Err(invalid("The mfa_token is not valid.")),
    }
}

/// The two answers of `/api/v1/2fa/verify`, for the document.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum VerifyResponse {
    Tokens(TokenResponse),
    Enrolled(super::two_factor::ConfirmResponse),
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// A code from the authenticator app, a mailed code, or a recovery code.
    #[schema(example = "123456")]
    code: String,
    /// From `/api/v1/login`, to finish signing in. Without it, a Bearer token confirms the
    /// authenticator set up with `/api/v1/2fa/setup`.
    #[serde(default)]
    mfa_token: Option<String>,
    /// `totp`, `email` or `recovery_code`; guessed from the code when left out.
    #[serde(default)]
    method: Option<String>,
}

/// Finishes a sign-in with an `mfa_token` and a code (answering tokens), or, with a Bearer
/// token and a code, confirms a new authenticator app (answering recovery codes).
#[utoipa::path(post, path = "/api/v1/2fa/verify", tag = "two-factor", request_body = VerifyRequest,
    security((), ("bearer" = [])),
    responses(
        BodyErrors,
        (status = 200, description = "Tokens (with `mfa_token`) or `recovery_codes` (with a Bearer token)", body = VerifyResponse),
        (status = 401, description = "Wrong code, or the mfa_token / access token is not valid", body = ErrorBody),
        (status = 403, description = "The account is disabled", body = ErrorBody),
        (status = 409, description = "No authenticator app is being set up", body = ErrorBody),
        (status = 429, description = "Too many wrong codes; see Retry-After", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let Some(mfa_token) = body.mfa_token.as_deref().filter(|t| !t.is_empty()) else {
        let token = bearer(&headers).ok_or_else(ApiError::invalid_token)?;
        let caller = api_user(&state.tokens, token)
            .await?
            .ok_or_else(ApiError::invalid_token)?;
        return super::two_factor::confirm(&state, &meta, &caller.user, &body.code)
            .await
            .map(IntoResponse::into_response);
    };
    let (token_hash, user) = mfa_token_user(&state, mfa_token).await?;
    let method = match body.method.as_deref() {
        Some(name) => Method::parse(name)
            .ok_or_else(|| ApiError::field("method", "Use totp, email or recovery_code."))?,
        None => guess_method(&state, &user, &body.code).await?,
    };
    let check = match verify_second_factor(&state, &meta, &user, method, &body.code).await? {
        SecondFactorCheck::Paused(wait) => {
            return Err(ApiError::too_many(wait, wrong_codes_message(wait)));
        }
        SecondFactorCheck::Checked(check) => check,
    };
    if check != CodeCheck::Accepted {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_code",
            check.message(),
        ));
    }
    // The token is used up only now, so a mistyped code can be tried again.
    let now = state.clock.now();
    if state
        .store
        .consume_email_token(&token_hash, MFA_TOKEN_PURPOSE, now)
        .await?
        .is_err()
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_token",
            "The mfa_token was already used. Sign in again.",
        ));
    }
    sign_in_tokens(&state, &meta, &user, &["pwd", method.record_name()]).await
}

/// Six digits are an app code (or a mailed one, for people without an app); anything else is
/// a recovery code.
async fn guess_method(state: &AppState, user: &User, code: &str) -> Result<Method, ApiError> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Method::Recovery);
    }
    if factors::totp_enabled(state, user).await? {
        // Both on: a live mailed code means the person asked for one.
        let mailed = user.email_otp_enabled
            && state
                .store
                .email_code(&user.id, second_factor::LOGIN_CODE)
                .await?
                .is_some_and(|c| c.expires_at > state.clock.now());
        return Ok(if mailed { Method::Email } else { Method::Totp });
    }
    Ok(Method::Email)
}

#[derive(Deserialize, ToSchema)]
pub struct SendCodeRequest {
    mfa_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct SendCodeResponse {
    sent: bool,
    /// Seconds the code stays valid.
    #[schema(example = 600)]
    expires_in: i64,
}

/// Mails a sign-in code to the account of an `mfa_token` (accounts with codes by email on).
#[utoipa::path(post, path = "/api/v1/2fa/email/send", tag = "two-factor", request_body = SendCodeRequest,
    responses(
        BodyErrors,
        (status = 200, description = "A 6-digit code was mailed", body = SendCodeResponse),
        (status = 401, description = "The mfa_token is not valid", body = ErrorBody),
        (status = 409, description = "The account does not use codes by email", body = ErrorBody),
        (status = 429, description = "Too many codes sent lately; see Retry-After", body = ErrorBody),
        (status = 503, description = "The mail could not be sent", body = ErrorBody),
    ))]
pub async fn send_email_code(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendCodeRequest>,
) -> Result<Json<SendCodeResponse>, ApiError> {
    let (_, user) = mfa_token_user(&state, &body.mfa_token).await?;
    if !user.email_otp_enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "email_codes_off",
            "This account does not use sign-in codes by email.",
        ));
    }
    if let Some(wait) = throttle::take(&state, &code_mails_key(&user.id), CODE_MAILS).await? {
        return Err(ApiError::too_many(wait, code_mails_message(wait)));
    }
    factors::send_email_code(&state, &user, second_factor::LOGIN_CODE, "to sign in").await?;
    Ok(Json(SendCodeResponse {
        sent: true,
        expires_in: factors::EMAIL_CODE_SECS,
    }))
}
