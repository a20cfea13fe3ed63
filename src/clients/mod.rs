//! Relying-app clients: who may ask for tokens, where codes may be sent, what they may get.

mod cache;
mod rules;

pub use cache::{CACHE_SECS, ClientCache};
pub use rules::{check_redirect_uri, check_resource_uri, valid_scope_token};

use crate::config::SecretKey;
use crate::crypto;
use crate::events::{EventType, Events};
use crate::input::space_list;
use crate::store::{ClientRow, Store, StoreError};
use serde_json::json;

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const KNOWN_GRANTS: [&str; 3] = [
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
];

/// Scopes that only make sense for a signed-in person.
pub const USER_SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

/// Access tokens live 15 minutes, refresh tokens 30 days, unless the client says otherwise.
pub const DEFAULT_ACCESS_TTL: i64 = 15 * 60;
pub const DEFAULT_REFRESH_TTL: i64 = 30 * 24 * 3600;
/// Longest access-token lifetime, which also bounds how long retired keys stay published.
pub const MAX_ACCESS_TTL: i64 = 24 * 3600;

#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    pub id: String,
    pub name: String,
    secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// RFC 8707 resources it may ask tokens for; with none, tokens are for the issuer.
    pub resources: Vec<String>,
    pub skip_consent: bool,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
}

fn split(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_string).collect()
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            redirect_uris: split(&row.redirect_uris),
            post_logout_redirect_uris: split(&row.post_logout_redirect_uris),
            grant_types: split(&row.grant_types),
            scopes: split(&row.scopes),
            resources: space_list(&row.resources),
            skip_consent: row.skip_consent,
            access_token_ttl: row.access_token_ttl,
            refresh_token_ttl: row.refresh_token_ttl,
        }
    }
}

/// The first-party JSON API signs people in as this built-in client. It has no row in
/// `oauth_clients` (so no one can use it at the OAuth endpoints), and its id cannot collide with
/// a registered client's, which are generated UUIDs.
pub const FIRST_PARTY_CLIENT_ID: &str = "first-party-api";
pub const FIRST_PARTY_CLIENT_NAME: &str = "Portcullis API";

impl Client {
    /// The built-in client of the first-party API: refresh tokens always, no consent, token
    /// lifetimes from the configuration.
    pub fn first_party(config: &crate::config::Config) -> Self {
        Self {
            id: FIRST_PARTY_CLIENT_ID.into(),
            name: FIRST_PARTY_CLIENT_NAME.into(),
            secret_hash: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec![GRANT_REFRESH_TOKEN.into()],
            scopes: Vec::new(),
            resources: Vec::new(),
            skip_consent: true,
            access_token_ttl: config.api_access_token_lifetime.as_secs() as i64,
            refresh_token_ttl: config.api_refresh_token_lifetime.as_secs() as i64,
        }
    }

    pub fn is_first_party(&self) -> bool {
        self.id == FIRST_PARTY_CLIENT_ID
    }

    /// Public clients (single-page and native apps) hold no secret.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The first requested resource this client may not ask for, if any.
    pub fn unknown_resource<'a>(&self, requested: &'a [String]) -> Option<&'a String> {
        requested.iter().find(|r| !self.resources.contains(r))
    }

    /// Constant-time check of a presented secret against the stored keyed hash.
    pub fn secret_matches(&self, key: &SecretKey, secret: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => crypto::constant_time_eq(&crypto::keyed_hash(key, secret), hash),
            None => false,
        }
    }
}

pub async fn find(store: &Store, id: &str) -> Result<Option<Client>, StoreError> {
    Ok(store.find_client(id).await?.map(Client::from))
}

/// What an operator asks for with `portcullis client create`.
#[derive(Clone, Debug)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub skip_consent: bool,
}

impl NewClient {
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the name must not be empty".into());
        }
        for grant in &self.grant_types {
            if !KNOWN_GRANTS.contains(&grant.as_str()) {
                return Err(format!(
                    "unknown grant type {grant:?}; use authorization_code, refresh_token or client_credentials"
                ));
            }
        }
        if self.grant_types.is_empty() {
            return Err("choose at least one grant type".into());
        }
        if self.public
            && self
                .grant_types
                .iter()
                .any(|g| g == GRANT_CLIENT_CREDENTIALS)
        {
            return Err("a public client cannot use client_credentials (it has no secret)".into());
        }
        if self
            .grant_types
            .iter()
            .any(|g| g == GRANT_AUTHORIZATION_CODE)
            && self.redirect_uris.is_empty()
        {
            return Err("the authorization_code grant needs at least one redirect URI".into());
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            check_redirect_uri(uri)?;
        }
        if let Some(bad) = self.scopes.iter().find(|s| !valid_scope_token(s)) {
            return Err(format!("{bad:?} is not a valid scope name"));
        }
        for resource in &self.resources {
            check_resource_uri(resource)?;
        }
        Ok(())
    }
}

/// Creates the client with the default token lifetimes; returns it and, for confidential
/// clients, the secret (shown once).
pub async fn create(
    store: &Store,
    events: &Events,
    key: &SecretKey,
    new: NewClient,
    now: i64,
) -> Result<(Client, Option<String>), StoreError> {
    let lifetimes = ClientChanges {
        client: new,
        access_token_ttl: DEFAULT_ACCESS_TTL,
        refresh_token_ttl: DEFAULT_REFRESH_TTL,
    };
    create_with(store, events, key, &lifetimes, now).await
}

/// 22 random base64url characters (132 bits), never starting with `-` or `_`, so an id can be
/// given to the CLI (`client delete ID`) without being read as an option.
fn new_client_id() -> String {
    loop {
        let token = crypto::random_token();
        if token.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return token[..22].to_string();
        }
    }
}

/// Creates the client with the given token lifetimes (the admin form sets them).
pub async fn create_with(
    store: &Store,
    events: &Events,
    key: &SecretKey,
    settings: &ClientChanges,
    now: i64,
) -> Result<(Client, Option<String>), StoreError> {
    let new = &settings.client;
    let id = new_client_id();
    let secret = (!new.public).then(crypto::random_token);
    let row = ClientRow {
        id,
        name: new.name.trim().to_string(),
        secret_hash: secret.as_deref().map(|s| crypto::keyed_hash(key, s)),
        redirect_uris: new.redirect_uris.join(" "),
        post_logout_redirect_uris: new.post_logout_redirect_uris.join(" "),
        grant_types: new.grant_types.join(" "),
        scopes: new.scopes.join(" "),
        resources: new.resources.join(" "),
        skip_consent: new.skip_consent,
        access_token_ttl: settings.access_token_ttl,
        refresh_token_ttl: settings.refresh_token_ttl,
        created_at: now,
        updated_at: now,
    };
    let event = events.for_client(
        EventType::ClientCreated,
        &row.id,
        json!({ "name": row.name, "public": row.secret_hash.is_none() }),
    );
    store.create_client(&row, event).await?;
    Ok((Client::from(row), secret))
}

/// What an admin may change about a client (its id and secret stay).
#[derive(Clone, Debug)]
pub struct ClientChanges {
    pub client: NewClient,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
}

impl ClientChanges {
    pub fn validate(&self) -> Result<(), String> {
        self.client.validate()?;
        if !(60..=MAX_ACCESS_TTL).contains(&self.access_token_ttl) {
            return Err(format!(
                "the access token lifetime must be between 60 and {MAX_ACCESS_TTL} seconds"
            ));
        }
        if !(60..=365 * 24 * 3600).contains(&self.refresh_token_ttl) {
            return Err("the refresh token lifetime must be between 60 seconds and a year".into());
        }
        Ok(())
    }
}

/// Applies an admin's edit; false when there is no such client. Whether the client is public
/// does not change here (that would mean a new secret or dropping one): `client.public` is
/// ignored.
pub async fn update(
    store: &Store,
    events: &Events,
    id: &str,
    changes: &ClientChanges,
    now: i64,
) -> Result<bool, StoreError> {
    let new = &changes.client;
    let event = events.for_client(
        EventType::ClientChanged,
        id,
        json!({ "name": new.name.trim(), "secret_rotated": false }),
    );
    store
        .update_client(
            &ClientRow {
                id: id.to_string(),
                name: new.name.trim().to_string(),
                secret_hash: None,
                redirect_uris: new.redirect_uris.join(" "),
                post_logout_redirect_uris: new.post_logout_redirect_uris.join(" "),
                grant_types: new.grant_types.join(" "),
                scopes: new.scopes.join(" "),
                resources: new.resources.join(" "),
                skip_consent: new.skip_consent,
                access_token_ttl: changes.access_token_ttl,
                refresh_token_ttl: changes.refresh_token_ttl,
                created_at: now,
                updated_at: now,
            },
            event,
        )
        .await
}

/// A new secret for a confidential client; `None` when there is no such client or it is public.
pub async fn rotate_secret(
    store: &Store,
    events: &Events,
    key: &SecretKey,
    id: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let secret = crypto::random_token();
    let changed = store
        .set_client_secret_hash(
            id,
            &crypto::keyed_hash(key, &secret),
            now,
            events.for_client(
                EventType::ClientChanged,
                id,
                json!({ "secret_rotated": true }),
            ),
        )
        .await?;
    Ok(changed.then_some(secret))
}
