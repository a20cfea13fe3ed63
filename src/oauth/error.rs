//! Protocol errors in the RFC 6749 §5.2 wire format: `{"error": …, "error_description": …}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::tokens::{RedeemError, RefreshError};

#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Client authentication with HTTP Basic failed: answer with a Basic challenge (§5.2).
    pub basic_challenge: bool,
    /// A server_error whose cause was the database (counted in the metrics).
    database_failure: bool,
    /// Answer with `Retry-After` (503).
    retry_after: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            database_failure: false,
            retry_after: false,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
        error.basic_challenge = basic;
        error
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// RFC 8707 §2: a `resource` that is malformed or not allowed.
    pub fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is too large",
        )
    }

    /// 503 `temporarily_unavailable` (RFC 6749 §4.1.2.1's code, used by every endpoint
    /// here): the database does not take writes now. The caller adds `Retry-After`.
    pub fn temporarily_unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the server cannot save changes right now; try again shortly",
        );
        error.retry_after = true;
        error
    }

    pub fn server_error(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        if crate::store::unavailable_in(&cause) {
            tracing::warn!(error = %crate::ops::error_chain(cause.as_ref()), "protocol request refused: the database is unavailable");
            let mut error = Self::temporarily_unavailable();
            error.database_failure = true;
            return error;
        }
        tracing::error!(error = %cause, "protocol request failed");
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not complete the request",
        );
        error.database_failure = crate::ops::metrics::caused_by_database(&cause);
        error
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(cause: crate::store::StoreError) -> Self {
        Self::server_error(cause)
    }
}

impl From<crate::tokens::Internal> for OAuthError {
    fn from(cause: crate::tokens::Internal) -> Self {
        Self::server_error(cause)
    }
}

/// RFC 6749 §5.2 for a code exchange; RFC 8707 §2 `invalid_target` for a resource.
impl From<RedeemError> for OAuthError {
    fn from(error: RedeemError) -> Self {
        match error {
            RedeemError::Internal(cause) => Self::server_error(cause),
            RedeemError::ResourceNotGranted(_) => Self::invalid_target(error.to_string()),
            other => Self::invalid_grant(other.to_string()),
        }
    }
}

impl From<RefreshError> for OAuthError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::Internal(cause) => Self::server_error(cause),
            RefreshError::ScopeNotGranted(_) => Self::invalid_scope(error.to_string()),
            RefreshError::ResourceNotGranted(_) => Self::invalid_target(error.to_string()),
            RefreshError::Invalid | RefreshError::Reused { .. } => {
                Self::invalid_grant(error.to_string())
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\", charset=\"UTF-8\""),
            );
        }
        if self.retry_after {
            crate::ops::primary::with_retry_after(&mut response);
        }
        crate::ops::metrics::mark_failure(&mut response, self.database_failure);
        response
    }
}
