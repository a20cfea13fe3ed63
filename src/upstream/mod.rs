//! Sign-in through upstream OpenID providers: "Sign in with Google" and any others declared in
//! the config. `GET /auth/oauth/{name}` sends the browser to the provider; the callback checks
//! `state`, exchanges the code (PKCE), verifies the ID token and finds or creates the user.
//! An existing account with the same email is linked only after its password is entered
//! (`link.rs`), never silently.

mod link;
mod provider;

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
use crate::web::error::ErrorPage;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, MaybeUser};
pub use provider::Provider;
use provider::{UpstreamError, VerifiedPerson};

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

/// A signed-in person linking a provider from `/account`.
async fn link_to_signed_in_user(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    current: Option<User>,
    user_id: &str,
    name: &str,
    person: VerifiedPerson,
) -> Result<Response, AppError> {
    let label = state.upstreams.display_name(name);
    let Some(user) = current.filter(|u| u.id == user_id) else {
        return Err(AppError::Forbidden(
            "Sign in again to link another way of signing in.",
        ));
    };
    let message = match state.store.find_identity(name, &person.subject).await? {
        Some(identity) if identity.user_id == user.id => {
            Flash::info(format!("This {label} account is already linked."))
        }
        Some(_) => Flash::error(format!(
            "This {label} account is linked to another account here. Unlink it there first."
        )),
        None if crate::auth::linking(&user, person.email.as_deref(), person.email_verified)
            == Linking::Refused =>
        {
            Flash::error(format!(
                "Confirm your email address first (send a new link from this page), then link {label}."
            ))
        }
        None => {
            let now = state.clock.now();
            if !user.email_verified {
                // The provider confirmed this very address (`auth::linking`).
                state.store.set_email_verified(&user.id, now).await?;
            }
            state
                .store
                .link_identity(
                    &user.id,
                    name,
                    &person.subject,
                    person.email.as_deref(),
                    now,
                )
                .await?;
            tracing::info!(user_id = %user.id, provider = name, "linked an upstream account");
            audit::record(
                state,
                meta,
                Event::own("upstream_linked", &user.id).detail(name.to_string()),
            )
            .await;
            Flash::success(format!("You can now sign in with {label}."))
        }
    };
    flash::set(session, message).await?;
    Ok(Redirect::to("/account").into_response())
}

/// Finds the person by their link, asks for the password of an existing account with the same
/// email, or creates an account.
async fn sign_in_with(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    name: &str,
    person: VerifiedPerson,
    next: &NextUrl,
) -> Result<Response, AppError> {
    let label = state.upstreams.display_name(name);
    let now = state.clock.now();
    if let Some(identity) = state.store.find_identity(name, &person.subject).await? {
        let user = state.store.find_user_by_id(&identity.user_id).await?;
        let Some(user) = user else {
            return Err(AppError::NotFound);
        };
        state
            .store
            .touch_identity(name, &person.subject, person.email.as_deref(), now)
            .await?;
        return finish_sign_in(state, meta, session, &user, next).await;
    }
    let Some(email) = person.email.clone() else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "We need your email address",
            format!(
                "{label} did not share an email address, and an account here needs one. Allow it at {label}, or sign up with a password."
            ),
        ));
    };
    if let Some(existing) = state.store.find_user_by_email(&email).await? {
        // No silent takeover: the person proves they own the local account first.
        return link::ask_for_password(state, session, name, &person, &existing, next).await;
    }
    // An address the provider has not confirmed could belong to someone else, who would later
    // reset the password of this account and share it with the provider's account: no new
    // account from it.
    if !person.email_verified {
        return Ok(page(
            StatusCode::FORBIDDEN,
            "Your email address is not confirmed",
            format!(
                "{label} has not confirmed {email}, so we cannot make an account with it. Confirm it at {label} first, or sign up with a password."
            ),
        ));
    }
    let new_user = NewUser {
        email: email.clone(),
        display_name: person
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(100).collect()),
        password_hash: None,
        roles: Vec::new(),
        email_verified: true,
        identity: Some(NewIdentity {
            provider: name.to_string(),
            subject: person.subject.clone(),
            email: Some(email),
        }),
        now,
    };
    let user = match state.store.create_user(new_user).await {
        Ok(user) => user,
        Err(e) if e.is_unique_violation() => {
            return Ok(page(
                StatusCode::CONFLICT,
                "That sign-in could not be finished",
                "The account was created by another request at the same moment. Start again.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user_id = %user.id, provider = name, "signed up through an upstream provider");
    audit::record(
        state,
        meta,
        Event::own("sign_up", &user.id).detail(name.to_string()),
    )
    .await;
    finish_sign_in(state, meta, session, &user, next).await
}

/// After the provider vouched for the person: the sign-in service decides what follows, as
/// for a password.
async fn finish_sign_in(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    next: &NextUrl,
) -> Result<Response, AppError> {
    finish_sign_in_after(state, meta, session, user, METHOD, next).await
}

/// The same after `first_method` (`upstream`, or `pwd` when linking asked for the password).
pub(crate) async fn finish_sign_in_after(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    first_method: &str,
    next: &NextUrl,
) -> Result<Response, AppError> {
    match crate::auth::after_first_factor(state, user).await? {
        Step::Disabled => Ok(disabled_page()),
        Step::MustVerifyEmail => {
            let sent = crate::verification::send_link_throttled(state, user).await?;
            Ok(page(
                StatusCode::FORBIDDEN,
                "Confirm your email address",
                format!(
                    "Confirm your email address before you sign in. {}",
                    sent.message
                ),
            ))
        }
        step => crate::login::complete(state, meta, session, user, step, first_method, next).await,
    }
}

fn page(status: StatusCode, title: &'static str, message: impl Into<String>) -> Response {
    let mut page = ErrorPage::new(status, title, message);
    page.action = Some(("Back to sign-in", "/login"));
    page.into_response_with(status)
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
