//! Consent (OIDC Core §3.1.2.4): what an app asks for, shown to the person, and their answer.
//! Kept apart from the authorization endpoint so that later grants can ask the same way.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tower_sessions::Session;

use super::authorize::{AuthRequest, error_page, issue_code, redirect_error};
use crate::app::AppState;
use crate::clients::Client;
use crate::crypto;
use crate::store::User;
use crate::web::{AppError, CsrfForm, Layout, MaybeUser};

const CONSENT_KEY_PREFIX: &str = "authz:";
/// Pending requests kept per session; older ones are dropped (a person who opened many tabs
/// starts again in the oldest).
const MAX_PENDING: usize = 5;
const PENDING_LIST_KEY: &str = "authz_pending";
/// A consent question left unanswered this long has expired (the app's own request would
/// have timed out long before).
const PENDING_SECS: i64 = 10 * 60;

/// An authorization request waiting for the person's answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct PendingConsent {
    shown_at: i64,
    request: AuthRequest,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/consent", post(answer))
}

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
    resources: Vec<String>,
}

/// Asks the person; the request waits in the session under a random id.
pub(super) async fn show(
    session: &Session,
    now: i64,
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
    let resources = request.resources.clone();
    // Expired questions go, then the oldest beyond the cap: a session holds a few at most.
    let listed: Vec<String> = session.get(PENDING_LIST_KEY).await?.unwrap_or_default();
    let mut pending = Vec::with_capacity(listed.len() + 1);
    for id in listed {
        let key = format!("{CONSENT_KEY_PREFIX}{id}");
        match session.get::<PendingConsent>(&key).await {
            Ok(Some(waiting)) if now - waiting.shown_at < PENDING_SECS => pending.push(id),
            _ => {
                session.remove_value(&key).await?;
            }
        }
    }
    while pending.len() >= MAX_PENDING {
        let oldest = pending.remove(0);
        session
            .remove_value(&format!("{CONSENT_KEY_PREFIX}{oldest}"))
            .await?;
    }
    pending.push(request_id.clone());
    session.insert(PENDING_LIST_KEY, &pending).await?;
    let waiting = PendingConsent {
        shown_at: now,
        request,
    };
    session
        .insert(&format!("{CONSENT_KEY_PREFIX}{request_id}"), &waiting)
        .await?;
    let page = ConsentPage {
        layout: Layout::new(session, Some(user)).await?,
        client_name: client.name.clone(),
        request_id,
        lines,
        other_scopes,
        resources,
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

async fn answer(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    MaybeUser(user): MaybeUser,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Result<Response, AppError> {
    let key = format!("{CONSENT_KEY_PREFIX}{}", form.request_id);
    let waiting = session.remove::<PendingConsent>(&key).await.ok().flatten();
    let Some(PendingConsent { request, .. }) =
        waiting.filter(|w| state.clock.now() - w.shown_at < PENDING_SECS)
    else {
        return Ok(error_page(
            "This request has expired. Go back to the app and start again.",
        ));
    };
    let mut pending: Vec<String> = session.get(PENDING_LIST_KEY).await?.unwrap_or_default();
    pending.retain(|id| *id != form.request_id);
    session.insert(PENDING_LIST_KEY, &pending).await?;
    let Some(user) = user else {
        return Ok(error_page(
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
            state.events.for_user(
                crate::events::EventType::ConsentGranted,
                &user,
                serde_json::json!({ "client_id": request.client_id, "scope": request.scope.join(" ") }),
            ),
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
