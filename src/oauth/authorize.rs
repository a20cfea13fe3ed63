//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2, RFC 7636 PKCE, RFC 9700):
//! checks the client and redirect URI first (errors before that are pages, never redirects),
//! sends the person through the hosted sign-in and consent, then redirects back with a code.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use url::Url;

use super::AUTHORIZE_PATH;
use super::clients::{self, Client, GRANT_AUTHORIZATION_CODE};
use super::discovery::issuer;
use super::space_list;
use crate::app::AppState;
use crate::crypto;
use crate::input::encode_query_value;
use crate::store::{AuthCodeRow, User};
use crate::web::error::ErrorPage;
use crate::web::{AppError, CsrfForm, Layout, MaybeUser, auth};

/// Codes live 60 seconds (RFC 9700 §2.1.1 asks for a short life).
pub const CODE_TTL: i64 = 60;
const CONSENT_KEY_PREFIX: &str = "authz:";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize_get).post(authorize_post))
        .route("/oauth/consent", post(consent))
}

/// A checked authorization request, kept in the session while the person decides.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
}

fn error_page(status: StatusCode, message: &str) -> Response {
    ErrorPage::new(
        status,
        "This sign-in link does not work",
        message.to_string(),
    )
    .into_response_with(status)
}

/// The redirect back to the app with `params`, plus `state` and `iss` (RFC 9207).
fn redirect_to_client(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The app's return address is not valid.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(client_state) = client_state {
            query.append_pair("state", client_state);
        }
        query.append_pair("iss", &issuer(state));
    }
    Redirect::to(url.as_str()).into_response()
}

fn redirect_error(
    state: &AppState,
    request: &AuthRequest,
    error: &str,
    description: &str,
) -> Response {
    redirect_to_client(
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
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    authorize(state, session, user, query).await
}

/// …or as a form post.
async fn authorize_post(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    axum::Form(query): axum::Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    authorize(state, session, user, query).await
}

async fn authorize(
    state: AppState,
    session: Session,
    user: Option<User>,
    query: HashMap<String, String>,
) -> Result<Response, AppError> {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };

    // 1. Client and redirect URI: until both check out, show a page and never redirect.
    let Some(client_id) = param("client_id") else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "The app did not say who it is (client_id is missing).",
        ));
    };
    let Some(client) = clients::find(&state.store, client_id).await? else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "The app that sent you here is not registered with this server.",
        ));
    };
    let redirect_uri = match param("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        _ => {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                "The app asked to send you back to an address it has not registered, so we stopped here.",
            ));
        }
    };
    let mut request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope: Vec::new(),
        state: param("state").map(str::to_string),
        nonce: param("nonce").map(str::to_string),
        code_challenge: None,
    };

    // 2. From here on, errors go back to the app (§4.1.2.1).
    if param("response_type") != Some("code") {
        return Ok(redirect_error(
            &state,
            &request,
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Ok(redirect_error(
            &state,
            &request,
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    if param("request").is_some() || param("request_uri").is_some() {
        return Ok(redirect_error(
            &state,
            &request,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    let scope: Vec<String> = space_list(param("scope").unwrap_or(""));
    if let Some(bad) = scope.iter().find(|s| !client.allows_scope(s)) {
        return Ok(redirect_error(
            &state,
            &request,
            "invalid_scope",
            &format!("the scope {bad} is not allowed for this client"),
        ));
    }
    request.scope = scope;
    match (param("code_challenge"), param("code_challenge_method")) {
        (Some(challenge), Some("S256")) if challenge.len() == 43 => {
            request.code_challenge = Some(challenge.to_string())
        }
        (Some(_), Some("S256")) => {
            return Ok(redirect_error(
                &state,
                &request,
                "invalid_request",
                "code_challenge must be 43 characters of base64url",
            ));
        }
        (Some(_), _) => {
            return Ok(redirect_error(
                &state,
                &request,
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, _) if client.is_public() => {
            return Ok(redirect_error(
                &state,
                &request,
                "invalid_request",
                "PKCE (code_challenge with S256) is required for this client",
            ));
        }
        (None, _) => {}
    }
    let prompt: Vec<&str> = param("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if prompt.contains(&"none") && prompt.len() > 1 {
        return Ok(redirect_error(
            &state,
            &request,
            "invalid_request",
            "prompt=none cannot be combined",
        ));
    }
    let max_age = match param("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => {
            return Ok(redirect_error(
                &state,
                &request,
                "invalid_request",
                "max_age must be a number of seconds",
            ));
        }
    };

    // 3. The person: signed in recently enough, or sent to sign in and brought back here.
    let now = state.clock.now();
    let auth_time = auth::auth_time(&session).await?.unwrap_or(0);
    let too_old = max_age.is_some_and(|age| now - auth_time > age);
    let user = match user {
        Some(user) if !too_old && !prompt.contains(&"login") => user,
        _ if prompt.contains(&"none") => {
            return Ok(redirect_error(
                &state,
                &request,
                "login_required",
                "the user is not signed in",
            ));
        }
        signed_in => {
            if signed_in.is_some() {
                // prompt=login or max_age: a fresh sign-in is wanted.
                auth::sign_out(&state, &session).await?;
            }
            let next = return_path(&query);
            let mut login = format!("/login?next={}", encode_query_value(&next));
            if let Some(hint) = param("login_hint") {
                login.push_str(&format!("&login_hint={}", encode_query_value(hint)));
            }
            return Ok(Redirect::to(&login).into_response());
        }
    };

    // 4. Consent: first-party apps skip it; otherwise it is remembered per scope set.
    let granted = state
        .store
        .consent(&user.id, &client.id)
        .await?
        .unwrap_or_default();
    let granted: Vec<&str> = granted.split(' ').collect();
    let covered = request.scope.iter().all(|s| granted.contains(&s.as_str()));
    if client.skip_consent || (covered && !prompt.contains(&"consent")) {
        return issue_code(&state, &session, &user, &request).await;
    }
    if prompt.contains(&"none") {
        return Ok(redirect_error(
            &state,
            &request,
            "consent_required",
            "the user has not allowed this app yet",
        ));
    }
    show_consent(&session, &user, &client, request).await
}

/// This request again, minus what would send the person round in circles after signing in.
fn return_path(query: &HashMap<String, String>) -> String {
    let mut pairs: Vec<(&String, String)> = query
        .iter()
        .filter(|(name, _)| name.as_str() != "max_age")
        .filter_map(|(name, value)| {
            if name == "prompt" {
                let rest: Vec<&str> = value.split(' ').filter(|p| *p != "login").collect();
                return (!rest.is_empty()).then(|| (name, rest.join(" ")));
            }
            Some((name, value.clone()))
        })
        .collect();
    pairs.sort();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .finish();
    format!("{AUTHORIZE_PATH}?{query}")
}

async fn issue_code(
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
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            amr: methods.join(" "),
            created_at: now,
            expires_at: now + CODE_TTL,
            used_at: None,
        })
        .await?;
    Ok(redirect_to_client(
        state,
        &request.redirect_uri,
        request.state.as_deref(),
        &[("code", &code)],
    ))
}

// --- Consent -----------------------------------------------------------------------------------

struct ScopeLine {
    text: &'static str,
}

fn describe(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Know who you are when you sign in",
        "email" => "See your email address",
        "profile" => "See your name",
        "offline_access" => "Stay connected when you are not using it",
        _ => return None,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "oauth/consent.html")]
struct ConsentPage {
    layout: Layout,
    client_name: String,
    request_id: String,
    lines: Vec<ScopeLine>,
    other_scopes: Vec<String>,
}

async fn show_consent(
    session: &Session,
    user: &User,
    client: &Client,
    request: AuthRequest,
) -> Result<Response, AppError> {
    let request_id = crypto::random_token()[..16].to_string();
    let lines = request
        .scope
        .iter()
        .filter_map(|s| describe(s))
        .map(|text| ScopeLine { text })
        .collect();
    let other_scopes = request
        .scope
        .iter()
        .filter(|s| describe(s).is_none())
        .cloned()
        .collect();
    session
        .insert(&format!("{CONSENT_KEY_PREFIX}{request_id}"), &request)
        .await?;
    let page = ConsentPage {
        layout: Layout::new(session, Some(user)).await?,
        client_name: client.name.clone(),
        request_id,
        lines,
        other_scopes,
    };
    Ok(page.into_response())
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    decision: String,
}

async fn consent(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    MaybeUser(user): MaybeUser,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Result<Response, AppError> {
    let key = format!("{CONSENT_KEY_PREFIX}{}", form.request_id);
    let Some(request) = session.remove::<AuthRequest>(&key).await? else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "This request has expired. Go back to the app and start again.",
        ));
    };
    let Some(user) = user else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "You are no longer signed in. Go back to the app and start again.",
        ));
    };
    if form.decision != "allow" {
        return Ok(redirect_error(
            &state,
            &request,
            "access_denied",
            "the user did not allow the request",
        ));
    }
    state
        .store
        .save_consent(
            &user.id,
            &request.client_id,
            &request.scope.join(" "),
            state.clock.now(),
        )
        .await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("consent_granted", &user.id).detail(format!(
            "{}: {}",
            request.client_id,
            request.scope.join(" ")
        )),
    )
    .await;
    issue_code(&state, &session, &user, &request).await
}
