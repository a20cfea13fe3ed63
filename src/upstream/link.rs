//! `/auth/oauth/{name}/link`: the provider vouched for an email that already has an account
//! here. The person enters that account's password before the provider is linked to it, so an
//! upstream account (perhaps with an email its provider never checked) cannot take it over.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::page;
use super::provider::VerifiedPerson;
use crate::app::AppState;
use crate::input::NextUrl;
use crate::login::throttle;
use crate::store::User;
use crate::web::{AppError, CsrfForm, Layout};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/oauth/{name}/link", get(show).post(submit))
}

/// The verified upstream account waiting for the local password.
#[derive(Serialize, Deserialize)]
struct PendingLink {
    provider: String,
    subject: String,
    email: Option<String>,
    user_id: String,
    next: String,
    started_at: i64,
}

const PENDING: &str = "upstream_link";
const PENDING_SECS: i64 = 10 * 60;

#[derive(Template, WebTemplate)]
#[template(path = "upstream/link.html")]
struct LinkPage {
    layout: Layout,
    provider: String,
    provider_label: String,
    email: String,
    error: Option<String>,
}

pub async fn ask_for_password(
    state: &AppState,
    session: &Session,
    name: &str,
    person: &VerifiedPerson,
    existing: &User,
    next: &NextUrl,
) -> Result<Response, AppError> {
    session
        .insert(
            PENDING,
            PendingLink {
                provider: name.to_string(),
                subject: person.subject.clone(),
                email: person.email.clone(),
                user_id: existing.id.clone(),
                next: next.as_str().to_string(),
                started_at: state.clock.now(),
            },
        )
        .await?;
    Ok(Redirect::to(&format!("/auth/oauth/{name}/link")).into_response())
}

async fn pending(
    state: &AppState,
    session: &Session,
    name: &str,
) -> Result<Option<(PendingLink, User)>, AppError> {
    let Some(link) = session.get::<PendingLink>(PENDING).await? else {
        return Ok(None);
    };
    if link.provider != name || state.clock.now() - link.started_at > PENDING_SECS {
        session.remove_value(PENDING).await?;
        return Ok(None);
    }
    let user = state.store.find_user_by_id(&link.user_id).await?;
    Ok(user.map(|user| (link, user)))
}

fn expired(state: &AppState, name: &str) -> Response {
    let label = state.upstreams.display_name(name);
    page(
        StatusCode::BAD_REQUEST,
        "Start again",
        format!(
            "There is no {label} account waiting to be linked in this browser, or you waited more than 10 minutes."
        ),
    )
}

async fn link_page(
    state: &AppState,
    session: &Session,
    name: &str,
    user: &User,
    error: Option<String>,
) -> Result<LinkPage, AppError> {
    Ok(LinkPage {
        layout: Layout::new(session, None).await?,
        provider: name.to_string(),
        provider_label: state.upstreams.display_name(name),
        email: user.email.clone(),
        error,
    })
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let Some((_, user)) = pending(&state, &session, &name).await? else {
        return Ok(expired(&state, &name));
    };
    Ok(link_page(&state, &session, &name, &user, None)
        .await?
        .into_response())
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    password: String,
}

async fn submit(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<LinkForm>,
) -> Result<Response, AppError> {
    let Some((link, user)) = pending(&state, &session, &name).await? else {
        return Ok(expired(&state, &name));
    };
    // The same throttle as the sign-in form: this is a password check too.
    let account_key = throttle::account_key(&user.email);
    let ip_key = throttle::ip_key(peer.ip());
    let attempt = match throttle::begin(&state, &account_key, &ip_key).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            let page = link_page(
                &state,
                &session,
                &name,
                &user,
                Some(throttle::wait_message(wait)),
            );
            let mut response = (StatusCode::TOO_MANY_REQUESTS, page.await?).into_response();
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Ok(response);
        }
    };
    let too_long = form.password.chars().count() > crate::password::MAX_LENGTH;
    let password_ok = !too_long
        && state
            .hasher
            .verify(form.password, user.password_hash.clone())
            .await?;
    if !password_ok {
        let message = if user.password_hash.is_some() {
            "Wrong password.".to_string()
        } else {
            format!(
                "This account has no password. Sign in the way you usually do, then link {} on your account page.",
                state.upstreams.display_name(&name)
            )
        };
        let page = link_page(&state, &session, &name, &user, Some(message)).await?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    if user.disabled {
        return Ok(super::disabled_page());
    }
    session.remove_value(PENDING).await?;
    attempt.succeeded(&state).await?;
    let now = state.clock.now();
    match state
        .store
        .link_identity(&user.id, &name, &link.subject, link.email.as_deref(), now)
        .await
    {
        Ok(()) => {}
        // Linked meanwhile (another tab): the link exists, which is what was asked.
        Err(e) if e.is_unique_violation() => {}
        Err(e) => return Err(e.into()),
    }
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("upstream_linked", &user.id).detail(name.clone()),
    )
    .await;
    tracing::info!(user_id = %user.id, provider = %name, "linked an upstream account after a password check");
    let next = NextUrl::parse_or_default(Some(&link.next));
    // The password was shown; a second factor is still asked for.
    crate::login::complete(&state, &meta, &session, &user, "pwd", &next).await
}
