//! Relying-app clients: who may ask for tokens, where codes may be sent, what they may get.

use url::Url;

use crate::config::SecretKey;
use crate::crypto;
use crate::input::space_list;
use crate::store::{ClientRow, Store, StoreError};

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

/// How long a looked-up client (or its absence) is reused: changes made with the CLI or on
/// another node reach this one within this time, and the token endpoint is spared a query
/// per request.
pub const CACHE_SECS: i64 = 5;

/// When a client was looked up, and what was found.
type CacheEntries = std::collections::HashMap<String, (i64, Option<Client>)>;

/// Clients by id, each remembered for `CACHE_SECS`.
#[derive(Clone, Debug, Default)]
pub struct ClientCache {
    entries: std::sync::Arc<std::sync::RwLock<CacheEntries>>,
}

impl ClientCache {
    /// Forgets a client changed on this node, so the change applies here at once.
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }

    pub async fn get(
        &self,
        store: &Store,
        id: &str,
        now: i64,
    ) -> Result<Option<Client>, StoreError> {
        if let Ok(entries) = self.entries.read()
            && let Some((at, client)) = entries.get(id)
            && (0..CACHE_SECS).contains(&(now - at))
        {
            return Ok(client.clone());
        }
        let client = find(store, id).await?;
        if let Ok(mut entries) = self.entries.write() {
            // Bounded: unknown ids sent in bulk cannot grow it without limit.
            if entries.len() > 10_000 {
                entries.retain(|_, (at, _)| now - *at < CACHE_SECS);
                if entries.len() > 10_000 {
                    entries.clear();
                }
            }
            entries.insert(id.to_string(), (now, client.clone()));
        }
        Ok(client)
    }
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

/// Schemes that run code or read local data in the browser instead of reaching an app
/// (RFC 9700 §4.1.3, RFC 8252 §8.4): never a place to send a code.
const DANGEROUS_SCHEMES: [&str; 7] = [
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
];

/// Exact-match redirect URIs (RFC 9700 §4.1.3): absolute, no fragment; plain http only to this
/// machine (RFC 8252 §7.3), custom schemes allowed for native apps (RFC 8252 §7.1) unless they
/// are among the dangerous ones.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri:?} must not contain a fragment (#…)"));
    }
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if local => Ok(()),
        "http" | "https" => Err(format!(
            "{uri:?} must use https with a host (plain http is allowed only for localhost)"
        )),
        scheme if DANGEROUS_SCHEMES.contains(&scheme) => Err(format!(
            "{uri:?} uses the {scheme}: scheme, which cannot be a return address"
        )),
        _ => Ok(()),
    }
}

/// RFC 8707 §2: a resource is an absolute URI without a fragment; https, or http to this
/// machine.
pub fn check_resource_uri(uri: &str) -> Result<(), String> {
    let url =
        Url::parse(uri).map_err(|_| format!("the resource {uri:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("the resource {uri:?} must not contain a fragment"));
    }
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if local => Ok(()),
        _ => Err(format!(
            "the resource {uri:?} must be an https URL (plain http only for localhost)"
        )),
    }
}

/// RFC 6749 §3.3: scope tokens are printable ASCII without spaces, quotes or backslashes.
pub fn valid_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
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
    key: &SecretKey,
    new: NewClient,
    now: i64,
) -> Result<(Client, Option<String>), StoreError> {
    let lifetimes = ClientChanges {
        client: new,
        access_token_ttl: DEFAULT_ACCESS_TTL,
        refresh_token_ttl: DEFAULT_REFRESH_TTL,
    };
    create_with(store, key, &lifetimes, now).await
}

/// Creates the client with the given token lifetimes (the admin form sets them).
pub async fn create_with(
    store: &Store,
    key: &SecretKey,
    settings: &ClientChanges,
    now: i64,
) -> Result<(Client, Option<String>), StoreError> {
    let new = &settings.client;
    let id = crypto::random_token()[..22].to_string();
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
    store.create_client(&row).await?;
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
    id: &str,
    changes: &ClientChanges,
    now: i64,
) -> Result<bool, StoreError> {
    let new = &changes.client;
    store
        .update_client(&ClientRow {
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
        })
        .await
}

/// A new secret for a confidential client; `None` when there is no such client or it is public.
pub async fn rotate_secret(
    store: &Store,
    key: &SecretKey,
    id: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let secret = crypto::random_token();
    let changed = store
        .set_client_secret_hash(id, &crypto::keyed_hash(key, &secret), now)
        .await?;
    Ok(changed.then_some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_exact_https_or_local() {
        assert!(check_redirect_uri("https://app.example.com/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:3000/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(check_redirect_uri("http://app.example.com/cb").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        for dangerous in [
            "javascript:alert(1)",
            "JavaScript://example.com/%0Aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "blob:https://example.com/x",
        ] {
            assert!(check_redirect_uri(dangerous).is_err(), "{dangerous}");
        }
    }

    #[test]
    fn scope_tokens() {
        assert!(valid_scope_token("read:orders"));
        assert!(!valid_scope_token("a b") && !valid_scope_token("a\"b") && !valid_scope_token(""));
    }
}
