//! Sign-in through upstream OpenID providers: "Sign in with Google" and any others declared in
//! the config. `GET /auth/oauth/{name}` sends the browser to the provider; the callback checks
//! `state`, exchanges the code (PKCE), verifies the ID token and finds or creates the user.
//! An existing account with the same email is linked only after its password is entered
//! (`link.rs`), never silently.

mod link;
mod provider;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::auth::{Linking, Step};
use crate::config::Config;
use crate::crypto;
use crate::input::NextUrl;
use crate::store::{NewIdentity, NewUser, User};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, MaybeUser};
pub use provider::Provider;
use provider::{UpstreamError, VerifiedPerson};
pub(crate) use sign_in::finish_sign_in_after;
use sign_in::{link_to_signed_in_user, sign_in_with};

/// The configured providers, in the order their buttons appear.
#[derive(Clone, Default)]
pub struct Upstreams(Arc<Vec<Arc<Provider>>>);

/// What a sign-in page needs to draw a provider's button.
pub struct UpstreamButton {
    pub name: String,
    pub label: String,
}

impl Upstreams {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let providers = config
            .upstreams
            .iter()
            .map(|c| Provider::new(c.clone(), config.public_url.as_str()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self(Arc::new(providers)))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.0.iter().find(|p| p.config.name == name)
    }

    pub fn label(&self, name: &str) -> String {
        self.get(name)
            .map_or_else(|| name.to_string(), |p| p.config.label.clone())
    }

    /// The provider's own name for the account page ("Google"), from its button label.
    pub fn display_name(&self, name: &str) -> String {
        let label = self.label(name);
        label
            .strip_prefix("Sign in with ")
            .map_or(label.clone(), str::to_string)
    }

    pub fn buttons(&self) -> Vec<UpstreamButton> {
        self.0
            .iter()
            .map(|p| UpstreamButton {
                name: p.config.name.clone(),
                label: p.config.label.clone(),
            })
            .collect()
    }

    pub fn callback_urls(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|p| p.callback_url().to_string())
            .collect()
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oauth/{name}", get(start))
        .route("/auth/oauth/{name}/callback", get(callback))
        .merge(link::router())
}

/// A flow between the redirect to the provider and its callback, kept in the session.
#[derive(Serialize, Deserialize)]
struct PendingFlow {
    provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    next: String,
    /// Set when a signed-in person links a provider from `/account`.
    link_to: Option<String>,
    started_at: i64,
}

const FLOW: &str = "upstream_flow";
/// Time allowed at the provider's pages.
const FLOW_SECS: i64 = 10 * 60;
/// The sign-in method recorded in the session (and so in `amr`, where RFC 8176 has no value
/// for it and it is left out).
pub const METHOD: &str = "upstream";

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
) -> Result<Response, AppError> {
    let provider = state.upstreams.get(&name).ok_or(AppError::NotFound)?;
    let next = NextUrl::parse_or_default(query.next.as_deref());
    if let Some(user) = &user {
        // Linking another way in needs the person, not only the session.
        let page = crate::account::step_up::step_up_page(&state, &session, user, "/account");
        if let Some(page) = page.await? {
            return Ok(page);
        }
    }
    let started = match provider.start().await {
        Ok(started) => started,
        Err(e) => return Ok(upstream_error_page(&state, &name, &e)),
    };
    session
        .insert(
            FLOW,
            PendingFlow {
                provider: name,
                state: started.state,
                nonce: started.nonce,
                pkce_verifier: started.pkce_verifier,
                next: next.as_str().to_string(),
                link_to: user.map(|u| u.id),
                started_at: state.clock.now(),
            },
        )
        .await?;
    Ok(Redirect::to(&started.url).into_response())
}

/// RFC 6749 §4.1.2 (success) and §4.1.2.1 (error) responses from the provider.
#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    MaybeUser(current): MaybeUser,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let provider = state
        .upstreams
        .get(&name)
        .ok_or(AppError::NotFound)?
        .clone();
    let label = state.upstreams.display_name(&name);
    // The flow is single-use whatever happens next.
    let flow = session.remove::<PendingFlow>(FLOW).await?;
    let flow = flow.filter(|f| {
        f.provider == name
            && state.clock.now() - f.started_at <= FLOW_SECS
            && query
                .state
                .as_deref()
                .is_some_and(|s| crypto::constant_time_eq(s, &f.state))
    });
    let Some(flow) = flow else {
        tracing::warn!(provider = %name, "upstream callback without a matching state");
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "That sign-in could not be finished",
            format!(
                "The answer from {label} does not belong to a sign-in started in this browser, \
                 or it took more than 10 minutes. Nothing was changed; start again."
            ),
        ));
    };
    if let Some(error) = query.error.as_deref() {
        tracing::info!(provider = %name, error, "the provider answered with an error");
        return Ok(if error == "access_denied" {
            page(
                StatusCode::FORBIDDEN,
                "Sign-in cancelled",
                format!(
                    "{label} did not let us sign you in, so nothing was changed. You can sign in another way or try again."
                ),
            )
        } else {
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                format!(
                    "{label} reported a problem ({code}). Nothing was changed; try again in a moment."
                ),
            )
        });
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "That sign-in could not be finished",
            format!("The answer from {label} had no authorization code. Start again."),
        ));
    };
    let person = match provider
        .finish(code, &flow.pkce_verifier, &flow.nonce)
        .await
    {
        Ok(person) => person,
        Err(e) => return Ok(upstream_error_page(&state, &name, &e)),
    };
    let next = NextUrl::parse_or_default(Some(&flow.next));
    if let Some(user_id) = flow.link_to {
        return link_to_signed_in_user(&state, &meta, &session, current, &user_id, &name, person)
            .await;
    }
    sign_in_with(&state, &meta, &session, &name, person, &next).await
}

fn page(status: StatusCode, title: &'static str, message: impl Into<String>) -> Response {
    AppError::page(status, title, message)
        .with_action("Back to sign-in", "/login")
        .into_response()
}

fn disabled_page() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This account is disabled",
        "Contact the administrator if you think this is a mistake.",
    )
}

fn upstream_error_page(state: &AppState, name: &str, error: &UpstreamError) -> Response {
    let label = state.upstreams.display_name(name);
    match error {
        UpstreamError::Unreachable(_) => page(
            StatusCode::BAD_GATEWAY,
            "Cannot reach the sign-in service",
            format!(
                "{label} cannot be reached right now. Nothing was changed; try again in a few minutes, or sign in another way."
            ),
        ),
        UpstreamError::Refused(_) => page(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            format!("{label} refused to finish the sign-in. Nothing was changed; start again."),
        ),
        UpstreamError::BadIdToken(_) => page(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            format!(
                "The answer from {label} could not be verified, so we did not use it. Nothing was changed; start again."
            ),
        ),
    }
}
