//! The JSON API for first-party apps (`/api/v1`): sign-up, sign-in with a second step or a
//! passkey, the caller's account, token refresh, sign-out and sign-ins. Same accounts, factors and tokens as
//! the hosted pages and the OpenID provider. The OpenAPI document is generated from the
//! handlers' annotations, which also route them, so the two cannot drift apart.

mod accounts;
mod bearer;
pub mod error;
mod passkeys;
mod sessions;
mod sign_in;

pub use sign_in::MFA_TOKEN_PURPOSE;
mod two_factor;

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::config::Config;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis API",
        description = "JSON API for first-party apps. Errors are `{\"error\", \"message\", \"fields\"?}`; \
                       access tokens are JWTs (RFC 9068) for the audience `<public URL>/api/v1`, \
                       verifiable with the server's JWKS."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "accounts", description = "Sign-up and the caller's account"),
        (name = "sign-in", description = "Password sign-in and its second step"),
        (name = "two-factor", description = "Setting up an authenticator app"),
        (name = "passkeys", description = "Passkeys (WebAuthn): adding one, signing in with one"),
        (name = "sessions", description = "Tokens, sign-out and the caller's sign-ins"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the protected endpoints name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every endpoint, with its documentation.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::signup))
        .routes(routes!(accounts::whoami))
        .routes(routes!(sign_in::login))
        .routes(routes!(sign_in::verify))
        .routes(routes!(sign_in::send_email_code))
        .routes(routes!(two_factor::setup))
        .routes(routes!(passkeys::register_begin))
        .routes(routes!(passkeys::register_finish))
        .routes(routes!(passkeys::login_begin))
        .routes(routes!(passkeys::login_finish))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::logout_all))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::end))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "accounts",
    responses((status = 200, description = "This API's OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| openapi().to_json().unwrap_or_else(|_| "{}".into()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json.clone(),
    )
        .into_response()
}

async fn unknown_endpoint() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such API endpoint; see /api/v1/openapi.json.",
    )
}

/// The API's routes, with CORS for the configured origins (off when none are).
pub fn router(config: &Config) -> Router<AppState> {
    let (routes, _) = documented_routes().split_for_parts();
    let routes = routes.route("/api/v1/{*rest}", axum::routing::any(unknown_endpoint));
    if config.cors_allowed_origins.is_empty() {
        return routes;
    }
    let origins: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    // Bearer tokens, not cookies: no credentials mode, so a page on an allowed origin still
    // cannot ride on a browser session.
    routes.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
            .max_age(Duration::from_secs(600)),
    )
}
