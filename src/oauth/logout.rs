//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the browser session and
//! returns to a registered post-logout URI with `state`. Without a valid `id_token_hint` the
//! person confirms first, so a stray link cannot sign them out.

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

use super::LOGOUT_PATH;
use crate::app::AppState;
use crate::clients;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout, MaybeUser, auth};

const PENDING: &str = "pending_logout";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(LOGOUT_PATH, get(logout))
        .route("/oauth/logout/confirm", post(confirm))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AfterLogout {
    redirect: Option<String>,
    state: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "oauth/logout.html")]
struct ConfirmPage {
    layout: Layout,
    client_name: Option<String>,
}

fn bad_request(message: &str) -> Response {
    AppError::page(
        StatusCode::BAD_REQUEST,
        "This sign-out link does not work",
        message,
    )
    .into_response()
}

fn finish(after: &AfterLogout) -> Response {
    match &after.redirect {
        Some(uri) => {
            let mut url = match Url::parse(uri) {
                Ok(url) => url,
                Err(_) => return Redirect::to("/").into_response(),
            };
            if let Some(state) = &after.state {
                url.query_pairs_mut().append_pair("state", state);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => Redirect::to("/").into_response(),
    }
}

async fn logout(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    // An expired ID token is still a fine hint: its signature, type and issuer matter here.
    // An access token is not an ID token, and is refused as one.
    let hint = match param("id_token_hint") {
        Some(token) => state.tokens.id_token_hint(token).await,
        None => None,
    };
    if param("id_token_hint").is_some() && hint.is_none() {
        return Ok(bad_request(
            "The app sent a sign-in token that this server did not issue.",
        ));
    }
    let client_id = hint
        .as_ref()
        .and_then(|c| c["aud"].as_str().map(str::to_string))
        .or_else(|| param("client_id").map(str::to_string));
    let client = match &client_id {
        Some(id) => clients::find(&state.store, id).await?,
        None => None,
    };
    let redirect = match (param("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(uri), Some(client)) if client.post_logout_redirect_uris.iter().any(|r| r == uri) => {
            Some(uri.to_string())
        }
        (Some(_), _) => {
            return Ok(bad_request(
                "The app asked to send you to an address it has not registered, so we stopped here.",
            ));
        }
    };
    let after = AfterLogout {
        redirect,
        state: param("state").map(str::to_string),
    };

    let hint_matches = match (&hint, &user) {
        (Some(claims), Some(user)) => claims["sub"].as_str() == Some(user.id.as_str()),
        (Some(_), None) => true,
        _ => false,
    };
    if user.is_none() || hint_matches {
        auth::sign_out(&state, &session).await?;
        if after.redirect.is_none() {
            flash::set(&session, Flash::info("You have signed out.")).await?;
        }
        return Ok(finish(&after));
    }
    session.insert(PENDING, &after).await?;
    let page = ConfirmPage {
        layout: Layout::new(&session, user.as_ref()).await?,
        client_name: client.map(|c| c.name),
    };
    Ok(page.into_response())
}

#[derive(Deserialize)]
struct ConfirmForm {}

async fn confirm(
    State(state): State<AppState>,
    session: Session,
    CsrfForm(_): CsrfForm<ConfirmForm>,
) -> Result<Response, AppError> {
    let after = session
        .remove::<AfterLogout>(PENDING)
        .await?
        .unwrap_or(AfterLogout {
            redirect: None,
            state: None,
        });
    auth::sign_out(&state, &session).await?;
    if after.redirect.is_none() {
        flash::set(&session, Flash::info("You have signed out.")).await?;
    }
    Ok(finish(&after))
}
