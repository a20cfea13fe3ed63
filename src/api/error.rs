//! The API's error answer, `{"error", "message", "fields"?}`, and the JSON body extractor that
//! turns every kind of bad body into one: 415 (not JSON), 400 (broken JSON), 413 (too large),
//! 422 (missing fields, wrong types), each with a message a person can act on.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::store::StoreError;
use crate::web::AppError;

/// What every failed API call answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code for programs, like `invalid_credentials`.
    #[schema(example = "invalid_credentials")]
    pub error: &'static str,
    /// What went wrong, for people.
    #[schema(example = "Wrong email or password.")]
    pub message: String,
    /// Per-field messages, on validation errors (422) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// What any endpoint that reads a JSON body may answer about the body itself.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only describes answers, for the OpenAPI document
pub enum BodyErrors {
    #[response(status = 400, description = "The body is not valid JSON")]
    NotValidJson(ErrorBody),
    #[response(
        status = 413,
        description = "The body is larger than the server accepts"
    )]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "The body is not sent as application/json")]
    NotJson(ErrorBody),
    #[response(
        status = 422,
        description = "Fields are missing, of the wrong type or not valid; see `fields`"
    )]
    Invalid(ErrorBody),
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<i64>,
    /// A 500 whose cause was the database (counted in the metrics).
    database_failure: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
                fields: None,
            },
            retry_after: None,
            database_failure: false,
        }
    }

    /// 422 with a message per field.
    pub fn fields(fields: BTreeMap<String, String>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Some fields are missing or not valid; see `fields`.",
        );
        error.body.fields = Some(fields);
        error
    }

    pub fn field(name: &str, message: impl Into<String>) -> Self {
        Self::fields(BTreeMap::from([(name.to_string(), message.into())]))
    }

    /// 429 with `Retry-After`.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large.",
        )
    }

    pub fn too_many(seconds: i64, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
        error.retry_after = Some(seconds);
        error
    }

    /// RFC 6750 §3.1: a missing or bad Bearer token.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Send a valid access token: Authorization: Bearer <access_token>. It may have \
             expired or been revoked; refresh it or sign in again.",
        )
    }

    /// 503 with `Retry-After`: the database does not take writes now.
    pub fn unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "This service cannot save changes right now (its database is being replaced). Try \
             again in a moment; tokens you hold keep working.",
        );
        error.retry_after = Some(crate::ops::primary::RETRY_AFTER_SECONDS as i64);
        error
    }

    fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        if crate::store::unavailable_in(&cause) {
            tracing::warn!(error = %crate::ops::error_chain(cause.as_ref()), "API request refused: the database is unavailable");
            let mut error = Self::unavailable();
            error.database_failure = true;
            return error;
        }
        tracing::error!(error = %cause, "an API request failed");
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Something went wrong on our side. Try again in a moment.",
        );
        error.database_failure = crate::ops::metrics::caused_by_database(&cause);
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        crate::ops::metrics::mark_failure(&mut response, self.database_failure);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::internal(error)
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::BadRequest(message) => {
                Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
            }
            AppError::Busy => {
                let mut error = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "Too many sign-ins at once right now. Try again in a few seconds.",
                );
                error.retry_after = Some(i64::from(crate::password::BUSY_RETRY_AFTER_SECONDS));
                error
            }
            other => Self::internal(other),
        }
    }
}

impl From<crate::tokens::Internal> for ApiError {
    fn from(error: crate::tokens::Internal) -> Self {
        Self::internal(error)
    }
}

/// The API never narrows a refresh, so every failure but the server's says: sign in again.
impl From<crate::tokens::RefreshError> for ApiError {
    fn from(error: crate::tokens::RefreshError) -> Self {
        use crate::tokens::RefreshError;
        match error {
            RefreshError::Internal(cause) => Self::internal(cause),
            RefreshError::Reused { .. } => Self::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "This refresh token was used already, so its sign-in has ended. Sign in again.",
            ),
            RefreshError::Invalid
            | RefreshError::ScopeNotGranted(_)
            | RefreshError::ResourceNotGranted(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "The refresh token is invalid, expired or revoked. Sign in again.",
            ),
        }
    }
}

/// A JSON request body of type `T`.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON, with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "The request body could not be read.",
                )
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!(
            "The body is not valid JSON (line {}, column {}).",
            error.line(),
            error.column()
        ),
    )
}

/// Parses a body, naming the field at fault when the JSON is well-formed but does not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize(&mut deserializer) {
        // Trailing characters after the value make the body invalid JSON too.
        Ok(value) => match deserializer.end() {
            Ok(()) => return Ok(value),
            Err(e) => return Err(not_json(&e)),
        },
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if !inner.is_data() {
        return Err(not_json(&inner));
    }
    let text = inner.to_string();
    // serde reports a missing field at the object that lacks it: "missing field `email`".
    if let Some(name) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return Err(ApiError::field(name, "This field is required."));
    }
    if path == "." || path.is_empty() {
        return Err(ApiError::field(
            "body",
            "Send a JSON object with the fields this endpoint describes.",
        ));
    }
    // "invalid type: integer `5`, expected a string at line 1 column 11" → the part a person
    // needs.
    let reason = text.split(" at line ").next().unwrap_or(&text);
    Err(ApiError::field(&path, format!("Not valid: {reason}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        age: Option<u8>,
    }

    fn fields_of(error: ApiError) -> BTreeMap<String, String> {
        error.body.fields.unwrap_or_default()
    }

    #[test]
    fn a_missing_field_and_a_wrong_type_name_their_field() {
        let missing = parse::<Body>(br#"{"age": 3}"#).unwrap_err();
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(fields_of(missing).contains_key("email"));
        let wrong = parse::<Body>(br#"{"email": 5}"#).unwrap_err();
        assert!(fields_of(wrong)["email"].contains("expected a string"));
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        let broken = parse::<Body>(br#"{"email": "#).unwrap_err();
        assert_eq!(broken.status, StatusCode::BAD_REQUEST);
        let trailing = parse::<Body>(br#"{"email": "a"} x"#).unwrap_err();
        assert_eq!(trailing.status, StatusCode::BAD_REQUEST);
    }
}
