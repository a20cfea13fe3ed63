//! `/auth/oauth/{name}/link`: the provider vouched for an email that already has an account
//! here. The person enters that account's password before the provider is linked to it, so an
//! upstream account (perhaps with an email its provider never checked) cannot take it over.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::page;
use super::provider::VerifiedPerson;
use crate::app::AppState;
use crate::auth::{self, Linking, PasswordCheck, Subject};
use crate::input::NextUrl;
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
    /// The provider confirmed the account's unconfirmed address (`auth::Linking`).
    #[serde(default)]
    confirms_email: bool,
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
    let confirms_email =
        match auth::linking(existing, person.email.as_deref(), person.email_verified) {
            Linking::Allowed => false,
            Linking::AllowedConfirmingEmail => true,
            Linking::Refused => return Ok(unconfirmed_address(state, name, existing)),
        };
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
                confirms_email,
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

/// Linking is refused while the account's address is unconfirmed (see `auth::linking`).
pub fn unconfirmed_address(state: &AppState, name: &str, user: &User) -> Response {
    let label = state.upstreams.display_name(name);
    page(
        StatusCode::FORBIDDEN,
        "Confirm your email address first",
        format!(
            "An account for {} already exists here, but its address is not confirmed, so we \
             cannot link {label} to it yet. Sign in with its password and confirm the address \
             from the link we mail, or reset the password with \"Forgot password?\", then link \
             {label} from your account page.",
            user.email
        ),
    )
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
    session: Session,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<LinkForm>,
) -> Result<Response, AppError> {
    let Some((link, user)) = pending(&state, &session, &name).await? else {
        return Ok(expired(&state, &name));
    };
    // The same throttle as the sign-in form: this is a password check too.
    match auth::verify_password(&state, &meta, Subject::User(&user), form.password).await? {
        PasswordCheck::Right(_) => {}
        PasswordCheck::Paused(wait) => {
            let message = Some(auth::throttle::wait_message(wait));
            let page = link_page(&state, &session, &name, &user, message).await?;
            let mut response = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Ok(response);
        }
        PasswordCheck::Wrong => {
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
    }
    if user.disabled {
        return Ok(super::disabled_page());
    }
    session.remove_value(PENDING).await?;
    let now = state.clock.now();
    if link.confirms_email {
        // The provider confirmed this very address (see `auth::linking`).
        crate::verification::mark_verified(&state, &user).await?;
    }
    match state
        .store
        .link_identity(
            &user.id,
            &name,
            &link.subject,
            link.email.as_deref(),
            now,
            state.events.for_user(
                crate::events::EventType::ProviderLinked,
                &user,
                serde_json::json!({ "provider": name }),
            ),
        )
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
    // The password was shown; the sign-in service decides what follows (a second factor is
    // still asked for). The account is read again: linking may have confirmed its address.
    let user = state
        .store
        .find_user_by_id(&user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    super::finish_sign_in_after(&state, &meta, &session, &user, "pwd", &next).await
}
