//! `/admin/clients`: relying apps. List, create (the secret is shown once), edit, rotate the
//! secret, delete.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::{Admin, AdminAction};
use crate::app::AppState;
use crate::clients::{
    self, Client, ClientChanges, DEFAULT_ACCESS_TTL, DEFAULT_REFRESH_TTL, GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, NewClient,
};
use crate::web::EmptyForm;
use crate::web::flash::Flash;
use crate::web::{AppError, CsrfForm, Layout};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list).post(create))
        .route("/admin/clients/new", get(new_form))
        .route("/admin/clients/{id}", get(edit_form).post(update))
        .route("/admin/clients/{id}/rotate-secret", post(rotate))
        .route("/admin/clients/{id}/delete", post(delete))
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/clients.html")]
struct ListPage {
    layout: Layout,
    clients: Vec<Client>,
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
) -> Result<ListPage, AppError> {
    let clients = state
        .store
        .list_clients()
        .await?
        .into_iter()
        .map(Client::from)
        .collect();
    Ok(ListPage {
        layout: Layout::page(&session, Some(&admin)).await?,
        clients,
    })
}

/// The client form's fields, as typed (lists one per line).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ClientForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    public: Option<String>,
    #[serde(default)]
    grant_authorization_code: Option<String>,
    #[serde(default)]
    grant_refresh_token: Option<String>,
    #[serde(default)]
    grant_client_credentials: Option<String>,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    resources: String,
    #[serde(default)]
    skip_consent: Option<String>,
    #[serde(default)]
    access_token_ttl: String,
    #[serde(default)]
    refresh_token_ttl: String,
}

impl ClientForm {
    fn from_client(client: &Client) -> Self {
        let has = |g: &str| client.allows_grant(g).then(|| "on".to_string());
        Self {
            name: client.name.clone(),
            redirect_uris: client.redirect_uris.join("\n"),
            post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
            public: client.is_public().then(|| "on".into()),
            grant_authorization_code: has(GRANT_AUTHORIZATION_CODE),
            grant_refresh_token: has(GRANT_REFRESH_TOKEN),
            grant_client_credentials: has(GRANT_CLIENT_CREDENTIALS),
            scopes: client.scopes.join(" "),
            resources: client.resources.join("\n"),
            skip_consent: client.skip_consent.then(|| "on".into()),
            access_token_ttl: client.access_token_ttl.to_string(),
            refresh_token_ttl: client.refresh_token_ttl.to_string(),
        }
    }

    fn defaults() -> Self {
        Self {
            grant_authorization_code: Some("on".into()),
            grant_refresh_token: Some("on".into()),
            scopes: "openid email profile offline_access".into(),
            access_token_ttl: DEFAULT_ACCESS_TTL.to_string(),
            refresh_token_ttl: DEFAULT_REFRESH_TTL.to_string(),
            ..Self::default()
        }
    }

    fn changes(&self) -> Result<ClientChanges, String> {
        let lines = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut grant_types = Vec::new();
        for (on, grant) in [
            (&self.grant_authorization_code, GRANT_AUTHORIZATION_CODE),
            (&self.grant_refresh_token, GRANT_REFRESH_TOKEN),
            (&self.grant_client_credentials, GRANT_CLIENT_CREDENTIALS),
        ] {
            if on.is_some() {
                grant_types.push(grant.to_string());
            }
        }
        let seconds = |text: &str, what: &str| -> Result<i64, String> {
            text.trim()
                .parse::<i64>()
                .map_err(|_| format!("the {what} lifetime must be a number of seconds"))
        };
        let changes = ClientChanges {
            client: NewClient {
                name: self.name.trim().to_string(),
                redirect_uris: lines(&self.redirect_uris),
                post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
                public: self.public.is_some(),
                grant_types,
                scopes: self.scopes.split_whitespace().map(str::to_string).collect(),
                resources: lines(&self.resources),
                skip_consent: self.skip_consent.is_some(),
            },
            access_token_ttl: seconds(&self.access_token_ttl, "access token")?,
            refresh_token_ttl: seconds(&self.refresh_token_ttl, "refresh token")?,
        };
        changes.validate()?;
        Ok(changes)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/client_form.html")]
struct FormPage {
    layout: Layout,
    /// `None` while creating.
    client_id: Option<String>,
    form: ClientForm,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/client_secret.html")]
struct SecretPage {
    layout: Layout,
    client_id: String,
    name: String,
    secret: Option<String>,
}

async fn new_form(session: Session, Admin(admin): Admin) -> Result<FormPage, AppError> {
    Ok(FormPage {
        layout: Layout::new(&session, Some(&admin)).await?,
        client_id: None,
        form: ClientForm::defaults(),
        error: None,
    })
}

async fn create(
    action: AdminAction,
    CsrfForm(form): CsrfForm<ClientForm>,
) -> Result<Response, AppError> {
    let AdminAction {
        state,
        session,
        admin,
        ..
    } = &action;
    if let Some(page) = action.confirmed("/admin/clients/new").await? {
        return Ok(page);
    }
    let changes = match form.changes() {
        Ok(changes) => changes,
        Err(error) => {
            let page = FormPage {
                layout: Layout::new(session, Some(admin)).await?,
                client_id: None,
                form,
                error: Some(error),
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let (client, secret) = clients::create_with(
        &state.store,
        &state.events,
        &state.config.secret_key,
        &changes,
        state.clock.now(),
    )
    .await?;
    action
        .record(
            "admin.client_created",
            None,
            Some(format!("{} ({})", client.name, client.id)),
        )
        .await;
    secret_page(&action, client, secret).await
}

/// The client's id and, once only, its secret.
async fn secret_page(
    action: &AdminAction,
    client: Client,
    secret: Option<String>,
) -> Result<Response, AppError> {
    Ok(SecretPage {
        layout: Layout::new(&action.session, Some(&action.admin)).await?,
        client_id: client.id,
        name: client.name,
        secret,
    }
    .into_response())
}

async fn find(state: &AppState, id: &str) -> Result<Client, AppError> {
    clients::find(&state.store, id)
        .await?
        .ok_or(AppError::NotFound)
}

async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<FormPage, AppError> {
    let client = find(&state, &id).await?;
    Ok(FormPage {
        layout: Layout::new(&session, Some(&admin)).await?,
        form: ClientForm::from_client(&client),
        client_id: Some(client.id),
        error: None,
    })
}

async fn update(
    action: AdminAction,
    Path(id): Path<String>,
    CsrfForm(mut form): CsrfForm<ClientForm>,
) -> Result<Response, AppError> {
    let AdminAction {
        state,
        session,
        admin,
        ..
    } = &action;
    let client = find(state, &id).await?;
    let back = format!("/admin/clients/{}", client.id);
    if let Some(page) = action.confirmed(&back).await? {
        return Ok(page);
    }
    // Public or confidential is decided at creation (it decides whether there is a secret).
    form.public = client.is_public().then(|| "on".into());
    let changes = match form.changes() {
        Ok(changes) => changes,
        Err(error) => {
            let page = FormPage {
                layout: Layout::new(session, Some(admin)).await?,
                client_id: Some(client.id),
                form,
                error: Some(error),
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    clients::update(
        &state.store,
        &state.events,
        &client.id,
        &changes,
        state.clock.now(),
    )
    .await?;
    action
        .done(
            "admin.client_updated",
            None,
            Some(format!("{} ({})", changes.client.name, client.id)),
            Flash::success("The client is saved."),
            &back,
        )
        .await
}

async fn rotate(
    action: AdminAction,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    let AdminAction { state, .. } = &action;
    let client = find(state, &id).await?;
    if let Some(page) = action
        .confirmed(&format!("/admin/clients/{}", client.id))
        .await?
    {
        return Ok(page);
    }
    let secret = clients::rotate_secret(
        &state.store,
        &state.events,
        &state.config.secret_key,
        &client.id,
        state.clock.now(),
    )
    .await?;
    let Some(secret) = secret else {
        return Err(AppError::BadRequest(
            "A public client has no secret to rotate.".into(),
        ));
    };
    action
        .record(
            "admin.client_secret_rotated",
            None,
            Some(format!("{} ({})", client.name, client.id)),
        )
        .await;
    secret_page(&action, client, Some(secret)).await
}

async fn delete(
    action: AdminAction,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    let AdminAction { state, .. } = &action;
    let client = find(state, &id).await?;
    if let Some(page) = action
        .confirmed(&format!("/admin/clients/{}", client.id))
        .await?
    {
        return Ok(page);
    }
    state
        .store
        .delete_client(
            &client.id,
            state.clock.now(),
            state.events.for_client(
                crate::events::EventType::ClientDeleted,
                &client.id,
                serde_json::json!({}),
            ),
        )
        .await?;
    action
        .done(
            "admin.client_deleted",
            None,
            Some(format!("{} ({})", client.name, client.id)),
            Flash::success(format!("{} was deleted.", client.name)),
            "/admin/clients",
        )
        .await
}
