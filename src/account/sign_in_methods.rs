//! "Ways to sign in" on `/account`: the password and the linked upstream providers (Google…).
//! A provider can be unlinked while another way to sign in remains.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::format_time;
use crate::app::AppState;
use crate::store::User;
use crate::upstream::UpstreamButton;
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, CurrentUser};

pub struct SignInMethods {
    pub has_password: bool,
    pub linked: Vec<LinkedMethod>,
    /// Providers configured here that the person has not linked.
    pub available: Vec<UpstreamButton>,
}

pub struct LinkedMethod {
    pub provider: String,
    pub subject: String,
    pub label: String,
    pub email: String,
    pub since: String,
}

impl SignInMethods {
    pub async fn of(state: &AppState, user: &User) -> Result<Self, AppError> {
        let identities = state.store.identities_of(&user.id).await?;
        let available = state
            .upstreams
            .buttons()
            .into_iter()
            .filter(|b| !identities.iter().any(|i| i.provider == b.name))
            .collect();
        let linked = identities
            .into_iter()
            .map(|i| LinkedMethod {
                label: state.upstreams.display_name(&i.provider),
                provider: i.provider,
                subject: i.subject,
                email: i.email.unwrap_or_default(),
                since: format_time(i.created_at),
            })
            .collect();
        Ok(Self {
            has_password: user.password_hash.is_some(),
            linked,
            available,
        })
    }

    /// Unlinking must leave a way in: a password or another linked provider.
    pub fn can_unlink(&self) -> bool {
        self.has_password || self.linked.len() > 1
    }
}

#[derive(Deserialize)]
pub struct UnlinkForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    subject: String,
}

pub async fn unlink(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<UnlinkForm>,
) -> Result<Response, AppError> {
    let methods = SignInMethods::of(&state, &user).await?;
    let label = state.upstreams.display_name(&form.provider);
    let message = if !methods.can_unlink() {
        Flash::error(format!(
            "{label} is your only way to sign in. Set a password first, then unlink it."
        ))
    } else if state
        .store
        .unlink_identity(
            &user.id,
            &form.provider,
            &form.subject,
            state.events.for_user(
                crate::events::EventType::ProviderUnlinked,
                &user,
                serde_json::json!({ "provider": form.provider }),
            ),
        )
        .await?
    {
        crate::audit::record(
            &state,
            &meta,
            crate::audit::Event::own("upstream_unlinked", &user.id).detail(form.provider.clone()),
        )
        .await;
        tracing::info!(user_id = %user.id, provider = %form.provider, "unlinked an upstream account");
        Flash::success(format!(
            "{label} is no longer a way to sign in to your account."
        ))
    } else {
        Flash::info("That sign-in method was not linked.")
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/account").into_response())
}
