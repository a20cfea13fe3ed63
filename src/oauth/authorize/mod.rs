//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2, RFC 7636 PKCE, RFC 8707,
//! RFC 9700), in three steps: `parse` checks the request (client and redirect URI first: errors
//! before those hold are pages, never redirects), `decide` looks at the person and their
//! consent, and the handler answers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use url::Url;

mod request;

use super::AUTHORIZE_PATH;
use crate::app::AppState;
use crate::clients::Client;
use crate::crypto;
use crate::input::{encode_query_value, space_list};
use crate::store::{AuthCodeRow, User};
use crate::web::{AppError, MaybeUser, auth};
use request::{Prompt, Query, Refusal, parse};

/// Codes live 60 seconds (RFC 9700 §2.1.1 asks for a short life).
pub const CODE_TTL: i64 = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize_get).post(authorize_post))
        .merge(super::consent::router())
}

/// A checked authorization request, kept in the session while the person decides.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
}

pub(super) fn error_page(message: &str) -> Response {
    AppError::page(
        StatusCode::BAD_REQUEST,
        "This sign-in link does not work",
        message,
    )
    .into_response()
}

/// The redirect back to the app with `params`, plus `state` and `iss` (RFC 9207).
pub(super) fn redirect_to_app(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page("The app's return address is not valid.");
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(client_state) = client_state {
            query.append_pair("state", client_state);
        }
        query.append_pair("iss", state.tokens.issuer());
    }
    Redirect::to(url.as_str()).into_response()
}

pub(super) fn redirect_error(
    state: &AppState,
    request: &AuthRequest,
    error: &str,
    description: &str,
) -> Response {
    redirect_to_app(
        state,
        &request.redirect_uri,
        request.state.as_deref(),
        &[("error", error), ("error_description", description)],
    )
}

/// OIDC Core §3.1.2.1: the request may come as a query string (GET)…
async fn authorize_get(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let query = Query::parse(query.unwrap_or_default().as_bytes());
    authorize(state, session, user, query).await
}

/// …or as a form post.
async fn authorize_post(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(state, session, user, Query::parse(&body)).await
}

async fn authorize(
    state: AppState,
    session: Session,
    user: Option<User>,
    query: Query,
) -> Result<Response, AppError> {
    let (client, request, prompt) = match parse(&state, &query).await? {
        Ok(parsed) => parsed,
        Err(Refusal::Page(message)) => return Ok(error_page(message)),
        Err(Refusal::ToApp {
            redirect_uri,
            state: client_state,
            error,
            description,
        }) => {
            return Ok(redirect_to_app(
                &state,
                &redirect_uri,
                client_state.as_deref(),
                &[("error", error), ("error_description", &description)],
            ));
        }
    };
    match decide(&state, &session, user.as_ref(), &client, &request, &prompt).await? {
        Decision::SignIn => {
            // The current session stays until a new sign-in replaces it: a link from another
            // site with prompt=login must not sign anyone out.
            let next = return_path(&query.pairs);
            let mut login = format!("/login?next={}", encode_query_value(&next));
            if user.is_some() {
                login.push_str("&prompt=login");
            }
            if let Some(hint) = &prompt.login_hint {
                login.push_str(&format!("&login_hint={}", encode_query_value(hint)));
            }
            Ok(Redirect::to(&login).into_response())
        }
        Decision::Refuse(error, description) => {
            Ok(redirect_error(&state, &request, error, description))
        }
        Decision::AskConsent(user) => {
            super::consent::show(&session, state.clock.now(), &user, &client, request).await
        }
        Decision::IssueCode(user) => issue_code(&state, &session, &user, &request).await,
    }
}

enum Decision {
    SignIn,
    Refuse(&'static str, &'static str),
    AskConsent(User),
    IssueCode(User),
}

/// The person must be signed in recently enough, or is sent to sign in and brought back; then
/// consent: clients that skip it, or a remembered consent that covers the request, or asked.
async fn decide(
    state: &AppState,
    session: &Session,
    user: Option<&User>,
    client: &Client,
    request: &AuthRequest,
    prompt: &Prompt,
) -> Result<Decision, AppError> {
    let now = state.clock.now();
    let auth_time = auth::auth_time(session).await?.unwrap_or(0);
    let too_old = prompt.max_age.is_some_and(|age| now - auth_time > age);
    let user = match user {
        Some(user) if !too_old && !prompt.login => user.clone(),
        _ if prompt.none => {
            return Ok(Decision::Refuse(
                "login_required",
                "the user is not signed in",
            ));
        }
        _ => return Ok(Decision::SignIn),
    };
    if client.skip_consent {
        return Ok(Decision::IssueCode(user));
    }
    // No consent row means nothing was allowed, not even an empty scope: every app a person
    // has not approved asks first.
    let covered = state
        .store
        .consent(&user.id, &client.id)
        .await?
        .is_some_and(|granted| {
            let granted = space_list(&granted);
            request.scope.iter().all(|s| granted.contains(s))
        });
    if covered && !prompt.consent {
        return Ok(Decision::IssueCode(user));
    }
    if prompt.none {
        return Ok(Decision::Refuse(
            "consent_required",
            "the user has not allowed this app yet",
        ));
    }
    Ok(Decision::AskConsent(user))
}

/// This request again, minus what would send the person round in circles after signing in.
fn return_path(pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, String)> = pairs
        .iter()
        .filter(|(name, _)| name != "max_age")
        .filter_map(|(name, value)| {
            if name == "prompt" {
                let rest: Vec<&str> = value.split(' ').filter(|p| *p != "login").collect();
                return (!rest.is_empty()).then(|| (name.as_str(), rest.join(" ")));
            }
            Some((name.as_str(), value.clone()))
        })
        .collect();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str())))
        .finish();
    format!("{AUTHORIZE_PATH}?{query}")
}

pub(super) async fn issue_code(
    state: &AppState,
    session: &Session,
    user: &User,
    request: &AuthRequest,
) -> Result<Response, AppError> {
    let code = crypto::random_token();
    let now = state.clock.now();
    let methods = auth::sign_in_methods(session).await?;
    let auth_time = auth::auth_time(session).await?.unwrap_or(now);
    state
        .store
        .insert_auth_code(&AuthCodeRow {
            code_hash: crypto::sha256_hex(&code),
            client_id: request.client_id.clone(),
            user_id: user.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.join(" "),
            resources: request.resources.join(" "),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            amr: methods.join(" "),
            created_at: now,
            expires_at: now + CODE_TTL,
            used_at: None,
        })
        .await?;
    Ok(redirect_to_app(
        state,
        &request.redirect_uri,
        request.state.as_deref(),
        &[("code", &code)],
    ))
}
