//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2, RFC 7636 PKCE, RFC 8707,
//! RFC 9700), in three steps: `parse` checks the request (client and redirect URI first: errors
//! before those hold are pages, never redirects), `decide` looks at the person and their
//! consent, and the handler answers.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use url::Url;

use super::AUTHORIZE_PATH;
use super::params::check_resources;
use crate::app::AppState;
use crate::clients::{Client, GRANT_AUTHORIZATION_CODE};
use crate::crypto;
use crate::input::{encode_query_value, space_list, valid_s256_challenge};
use crate::store::{AuthCodeRow, User};
use crate::web::error::ErrorPage;
use crate::web::{AppError, MaybeUser, auth};

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

/// What the request asks of the person's sign-in (OIDC Core §3.1.2.1).
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
    max_age: Option<i64>,
    login_hint: Option<String>,
}

/// The parameters as sent: each once (RFC 6749 §3.1), except RFC 8707 `resource`.
struct Query {
    values: HashMap<String, String>,
    resources: Vec<String>,
    repeated: Option<String>,
    /// In order, to send the person back here after signing in.
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(text: &[u8]) -> Self {
        let mut query = Query {
            values: HashMap::new(),
            resources: Vec::new(),
            repeated: None,
            pairs: Vec::new(),
        };
        for (name, value) in url::form_urlencoded::parse(text) {
            query.pairs.push((name.to_string(), value.to_string()));
            if name == "resource" {
                query.resources.push(value.into_owned());
            } else if query
                .values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                query.repeated.get_or_insert_with(|| name.into_owned());
            }
        }
        query
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Why a request was refused.
enum Refusal {
    /// Before the client and redirect URI hold: a page, never a redirect.
    Page(&'static str),
    /// Sent back to the app (§4.1.2.1).
    ToApp {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

pub(super) fn error_page(message: &str) -> Response {
    ErrorPage::new(
        StatusCode::BAD_REQUEST,
        "This sign-in link does not work",
        message.to_string(),
    )
    .into_response_with(StatusCode::BAD_REQUEST)
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
        Decision::AskConsent(user) => super::consent::show(&session, &user, &client, request).await,
        Decision::IssueCode(user) => issue_code(&state, &session, &user, &request).await,
    }
}

/// Checks the request. The outer error is the server's; the inner, the request's.
async fn parse(
    state: &AppState,
    query: &Query,
) -> Result<Result<(Client, AuthRequest, Prompt), Refusal>, AppError> {
    // 1. Client and redirect URI: until both check out, a page and never a redirect.
    if let Some(name @ ("client_id" | "redirect_uri")) = query.repeated.as_deref() {
        return Ok(Err(Refusal::Page(if name == "client_id" {
            "The app named itself twice (client_id is repeated)."
        } else {
            "The app gave two return addresses (redirect_uri is repeated), so we stopped here."
        })));
    }
    let Some(client_id) = query.get("client_id") else {
        return Ok(Err(Refusal::Page(
            "The app did not say who it is (client_id is missing).",
        )));
    };
    let Some(client) = crate::clients::find(&state.store, client_id).await? else {
        return Ok(Err(Refusal::Page(
            "The app that sent you here is not registered with this server.",
        )));
    };
    let mut scope = space_list(query.get("scope").unwrap_or(""));
    // A scope named twice is granted once.
    let mut seen = std::collections::HashSet::new();
    scope.retain(|s| seen.insert(s.clone()));
    let openid = scope.iter().any(|s| s == "openid");
    let redirect_uri = match query.get("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        // RFC 6749 §3.1.2.3 allows leaving it out with one registered URI; OIDC Core
        // §3.1.2.1 requires it of every OpenID request.
        None if client.redirect_uris.len() == 1 && !openid => client.redirect_uris[0].clone(),
        None if openid => {
            return Ok(Err(Refusal::Page(
                "The app did not say where to send you back (redirect_uri is missing).",
            )));
        }
        _ => {
            return Ok(Err(Refusal::Page(
                "The app asked to send you back to an address it has not registered, so we stopped here.",
            )));
        }
    };
    let refuse = |error: &'static str, description: String| {
        Ok(Err(Refusal::ToApp {
            redirect_uri: redirect_uri.clone(),
            state: query.get("state").map(str::to_string),
            error,
            description,
        }))
    };

    // 2. From here on, errors go back to the app (§4.1.2.1).
    if let Some(name) = &query.repeated {
        return refuse(
            "invalid_request",
            format!("the parameter {name} is repeated"),
        );
    }
    if query.get("response_type") != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported".into(),
        );
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return refuse(
            "unauthorized_client",
            "this client may not use the authorization code flow".into(),
        );
    }
    if query.get("request").is_some() || query.get("request_uri").is_some() {
        return refuse(
            "request_not_supported",
            "request objects are not supported".into(),
        );
    }
    if let Some(bad) = scope.iter().find(|s| !client.allows_scope(s)) {
        return refuse(
            "invalid_scope",
            format!("the scope {bad} is not allowed for this client"),
        );
    }
    let resources = match check_resources(query.resources.clone()) {
        Ok(resources) => resources,
        Err(message) => return refuse("invalid_target", message),
    };
    if let Some(bad) = client.unknown_resource(&resources) {
        return refuse(
            "invalid_target",
            format!("the resource {bad} is not allowed for this client"),
        );
    }
    let code_challenge = match (
        query.get("code_challenge"),
        query.get("code_challenge_method"),
    ) {
        (Some(challenge), Some("S256")) if valid_s256_challenge(challenge) => {
            Some(challenge.to_string())
        }
        (Some(_), Some("S256")) => {
            return refuse(
                "invalid_request",
                "code_challenge must be 43 characters of base64url".into(),
            );
        }
        (Some(_), _) => {
            return refuse(
                "invalid_request",
                "code_challenge_method must be S256".into(),
            );
        }
        (None, _) if client.is_public() => {
            return refuse(
                "invalid_request",
                "PKCE (code_challenge with S256) is required for this client".into(),
            );
        }
        (None, _) => None,
    };
    let prompts = space_list(query.get("prompt").unwrap_or(""));
    let has = |p: &str| prompts.iter().any(|v| v == p);
    if has("none") && prompts.len() > 1 {
        return refuse("invalid_request", "prompt=none cannot be combined".into());
    }
    let max_age = match query.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => {
            return refuse(
                "invalid_request",
                "max_age must be a number of seconds".into(),
            );
        }
    };
    let prompt = Prompt {
        none: has("none"),
        login: has("login"),
        consent: has("consent"),
        max_age,
        login_hint: query.get("login_hint").map(str::to_string),
    };
    let request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope,
        resources,
        state: query.get("state").map(str::to_string),
        nonce: query.get("nonce").map(str::to_string),
        code_challenge,
    };
    Ok(Ok((client, request, prompt)))
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
