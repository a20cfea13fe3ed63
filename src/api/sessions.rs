//! Tokens and sign-ins: refresh, sign-out (one, or everywhere), and the caller's sign-ins — both
//! browser sessions and app sign-ins (token families) — each of which can be ended.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::bearer::{ApiUser, api_user};
use super::error::{ApiError, ApiJson, BodyErrors, ErrorBody};
use crate::account::sessions::{app_name, end_sign_in, sign_ins_of};
use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::tokens::Narrowing;
use crate::web::{bearer, no_store_json};

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// New tokens for a refresh token, which is used up (RFC 9700 §4.14.2 rotation). Presenting a
/// used refresh token again ends its whole sign-in.
#[utoipa::path(post, path = "/api/v1/token/refresh", tag = "sessions", request_body = RefreshRequest,
    responses(
        BodyErrors,
        (status = 200, description = "New tokens", body = super::sign_in::TokenResponse),
        (status = 401, description = "`invalid_refresh_token`: invalid, expired or revoked; `refresh_token_reused`: it was used already, so its sign-in ended", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let client = state.tokens.first_party();
    let result = state
        .tokens
        .refresh(&meta, client, &body.refresh_token, &Narrowing::default())
        .await;
    if let Err(error) = &result {
        audit::record_refresh_failure(&state, &meta, error).await;
    }
    Ok(no_store_json(result?.into_json()))
}

#[derive(Deserialize, ToSchema)]
pub struct LogoutRequest {
    refresh_token: String,
}

/// Signs out: ends the sign-in of the refresh token, and revokes the Bearer access token if one
/// is sent. Answers 204 whether or not the token was known (as RFC 7009 §2.2 does).
#[utoipa::path(post, path = "/api/v1/logout", tag = "sessions", request_body = LogoutRequest,
    security((), ("bearer" = [])),
    responses(
        BodyErrors,
        (status = 204, description = "Signed out"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let first_party = &state.tokens.first_party().id;
    if let Some(user_id) = state
        .tokens
        .end_sign_in(first_party, &body.refresh_token)
        .await?
    {
        audit::record(&state, &meta, Event::own("signed_out", &user_id)).await;
    }
    if let Some(token) = bearer(&headers)
        && let Some(caller) = api_user(&state.tokens, token).await?
    {
        state.tokens.revoke_access_token(&caller.token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out everywhere: every browser session, app sign-in, access and refresh token of the
/// caller ends.
#[utoipa::path(post, path = "/api/v1/logout-all", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every sign-in ended"),
        (status = 401, description = "The access token is missing, expired or revoked", body = ErrorBody),
    ))]
pub async fn logout_all(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: ApiUser,
) -> Result<StatusCode, ApiError> {
    let user = caller.user;
    state
        .store
        .bump_session_epoch(
            &user.id,
            state.clock.now(),
            state
                .events
                .about_user(crate::events::EventType::SessionsEndedEverywhere, &user),
        )
        .await?;
    audit::record(&state, &meta, Event::own("signed_out_everywhere", &user.id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// One place the caller is signed in.
#[derive(Serialize, ToSchema)]
pub struct SignInItem {
    /// Pass to `DELETE /api/v1/sessions/{id}`.
    id: String,
    /// `browser` (the hosted pages) or `app` (tokens: this API, or an app with refresh tokens).
    #[schema(example = "app")]
    kind: &'static str,
    /// What holds it: `Web browser`, `Portcullis API`, or the app's name.
    client: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    last_used_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    /// The sign-in this request's access token belongs to.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SignInList {
    sessions: Vec<SignInItem>,
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The caller's browser sessions and app sign-ins, most recently used first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Where the caller is signed in", body = SignInList),
        (status = 401, description = "The access token is missing, expired or revoked", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<SignInList>, ApiError> {
    let (browsers, apps) = sign_ins_of(&state, &caller.user.id).await?;
    let browsers = browsers.into_iter().map(|s| SignInItem {
        id: s.id,
        kind: "browser",
        client: "Web browser".into(),
        created_at: rfc3339(s.created_at),
        last_used_at: rfc3339(s.last_seen_at),
        user_agent: s.user_agent,
        ip: s.ip,
        current: false,
    });
    let apps = apps.into_iter().map(|f| SignInItem {
        current: caller.sign_in_id() == Some(f.family_id.as_str()),
        client: app_name(&f),
        id: f.family_id,
        kind: "app",
        created_at: rfc3339(f.created_at),
        last_used_at: rfc3339(f.last_used_at),
        user_agent: f.user_agent,
        ip: f.ip,
    });
    let mut sessions: Vec<SignInItem> = browsers.chain(apps).collect();
    // RFC 3339 in UTC sorts as time does.
    sessions.sort_by(|a, b| b.last_used_at.cmp(&a.last_used_at));
    Ok(Json(SignInList { sessions }))
}

/// Ends one of the caller's sign-ins: a browser session is signed out; an app sign-in loses
/// its refresh token and access tokens.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "A sign-in's id from `GET /api/v1/sessions`")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "The access token is missing, expired or revoked", body = ErrorBody),
        (status = 404, description = "The caller has no sign-in with this id", body = ErrorBody),
    ))]
pub async fn end(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if end_sign_in(&state, &caller.user.id, &id).await? {
        audit::record(&state, &meta, Event::own("session_ended", &caller.user.id)).await;
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "You have no sign-in with this id; it may have ended already.",
    ))
}
