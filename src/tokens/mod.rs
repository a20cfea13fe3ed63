//! The token service: issues access, ID and refresh tokens, checks bearer tokens, rotates and
//! revokes. It knows no HTTP: it takes the keys, the store, the issuer and a clock, and returns
//! typed results that the OAuth endpoints (`oauth/`) and the JSON API (`api/`) map to their wire
//! formats.

mod check;
pub mod claims;
mod code;
mod issue;
pub mod jwt;
mod key_creation;
pub mod keys;
mod refresh;
mod revoke;

use std::sync::Arc;

use serde_json::{Value, json};

pub use check::ActiveToken;
pub use code::{RedeemError, Redemption};
pub use keys::{Keys, SigningAlg};
pub use refresh::{Narrowing, RefreshError};

use crate::clients::{Client, ClientCache};
use crate::clock::Clock;
use crate::config::{Config, SecretKey};
use crate::store::Store;

/// What the service needs; one `Arc`, so a handler's copy costs one counter, not ten.
#[derive(Clone)]
pub struct TokenService(Arc<Parts>);

pub struct Parts {
    keys: Keys,
    store: Store,
    clock: Clock,
    clients: ClientCache,
    checks: check::CheckCache,
    issuer: Arc<str>,
    alg: SigningAlg,
    first_party: Arc<Client>,
    /// Opens the sealed signing keys when they are read again.
    secret: SecretKey,
    metrics: crate::ops::metrics::Metrics,
    /// Builds the events token changes write (a detected refresh-token reuse).
    events: crate::events::Events,
}

/// A token response's contents (RFC 6749 §5.1), before an adapter writes it out.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: String,
    pub expires_in: i64,
    /// Reported to relying apps (RFC 6749 §5.1 asks for it when it differs from the request).
    pub scope: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
}

impl TokenSet {
    pub fn into_json(self) -> Value {
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        });
        if let Some(scope) = self.scope {
            body["scope"] = Value::String(scope);
        }
        if let Some(id_token) = self.id_token {
            body["id_token"] = Value::String(id_token);
        }
        if let Some(refresh_token) = self.refresh_token {
            body["refresh_token"] = Value::String(refresh_token);
        }
        body
    }
}

/// A failure that is the server's, not the request's (database, keys).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Internal(#[from] anyhow::Error);

impl From<crate::store::StoreError> for Internal {
    fn from(error: crate::store::StoreError) -> Self {
        Self(error.into())
    }
}

impl From<keys::KeyError> for Internal {
    fn from(error: keys::KeyError) -> Self {
        Self(error.into())
    }
}

impl std::ops::Deref for TokenService {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl TokenService {
    pub fn new(
        config: &Config,
        store: Store,
        keys: Keys,
        clock: Clock,
        metrics: crate::ops::metrics::Metrics,
    ) -> Self {
        let events = crate::events::Events::from_config(config, clock.clone());
        Self(Arc::new(Parts {
            events,
            keys,
            clients: ClientCache::default(),
            checks: check::CheckCache::default(),
            issuer: issuer_of(config).into(),
            alg: config.signing_alg,
            first_party: Arc::new(Client::first_party(config)),
            secret: config.secret_key.clone(),
            store,
            clock,
            metrics,
        }))
    }

    /// The issuer: the public URL without a trailing slash, as relying parties compare it
    /// exactly.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience of first-party API tokens (RFC 9068 §3: `aud` names the resource).
    pub fn api_audience(&self) -> String {
        format!("{}/api/v1", self.issuer)
    }

    /// The built-in client of the first-party API.
    pub fn first_party(&self) -> &Client {
        &self.first_party
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The algorithm new tokens are signed with.
    pub fn signing_alg(&self) -> SigningAlg {
        self.alg
    }

    /// The published keys (RFC 7517), with retired ones until every token they signed expired.
    pub fn jwks_body(&self) -> axum::body::Bytes {
        self.keys
            .snapshot()
            .jwks_body(self.clock.now(), crate::clients::MAX_ACCESS_TTL)
    }

    /// The header and claims of a token one of our keys signed. A `kid` this node does not
    /// know yet (a key made a moment ago elsewhere) makes it read the keys before refusing.
    async fn verify(&self, token: &str) -> Option<(Value, Value)> {
        let keys = self.keys.snapshot();
        if let Some(verified) = jwt::verify(&keys, token) {
            return Some(verified);
        }
        let kid = jwt::unverified_kid(token)?;
        if keys.by_kid(&kid).is_some() {
            return None;
        }
        self.keys
            .reload_for_unknown(&kid, &self.store, &self.secret)
            .await;
        jwt::verify(&self.keys.snapshot(), token)
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>, crate::store::StoreError> {
        self.clients.get(&self.store, id, self.clock.now()).await
    }

    /// The claims of an ID token we issued, whatever its age (a logout hint may be expired):
    /// signature, type and issuer hold. Access tokens are refused: they are not hints.
    pub async fn id_token_hint(&self, token: &str) -> Option<Value> {
        let (header, claims) = self.verify(token).await?;
        (header["typ"] == "JWT" && claims["iss"] == *self.issuer && claims["aud"].is_string())
            .then_some(claims)
    }
}

/// The issuer for a configuration (also used before a service exists, by discovery).
pub fn issuer_of(config: &Config) -> String {
    config.public_url.as_str().trim_end_matches('/').to_string()
}
