//! Checking a bearer access token (RFC 6750, RFC 9068 §4): signature, type, issuer and expiry,
//! then what the database says of it, reused for a second per token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TokenService;
use crate::bus::Change;
use crate::input::space_list;
use crate::store::{StoreError, User};

/// An access token that is active now.
#[derive(Clone, Debug)]
pub struct ActiveToken {
    pub claims: Value,
    /// The person it speaks for; `None` for a client's own token.
    pub user: Option<User>,
}

impl ActiveToken {
    /// RFC 9068 §4: a resource accepts a token only when it is among the audiences.
    pub fn is_for(&self, audience: &str) -> bool {
        match &self.claims["aud"] {
            Value::String(one) => one == audience,
            Value::Array(many) => many.iter().any(|a| a == audience),
            _ => false,
        }
    }

    pub fn scope(&self) -> Vec<String> {
        space_list(self.claims["scope"].as_str().unwrap_or(""))
    }

    /// The token family (sign-in) a person's token belongs to.
    pub fn family(&self) -> Option<&str> {
        self.claims["sid"].as_str()
    }

    pub fn jti(&self) -> Option<&str> {
        self.claims["jti"].as_str()
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.claims["exp"].as_i64()
    }
}

/// `None`: not active; `Some(None)`: a client's token; `Some(Some(user))`: a person's.
type Standing = Option<Option<User>>;

impl TokenService {
    /// The token if it is one of ours and active now: signature, type, issuer and expiry hold,
    /// it was not revoked, and for a person's token the person is enabled, has not signed out
    /// everywhere since, its grant (token family) has not ended and the consent it rests on
    /// has not been taken back.
    pub async fn check(&self, token: &str) -> Result<Option<ActiveToken>, StoreError> {
        let Some((header, claims)) = self.verify(token).await else {
            return Ok(None);
        };
        let now = self.clock.now();
        let valid = header["typ"] == "at+jwt"
            && claims["iss"] == *self.issuer
            && claims["exp"].as_i64().is_some_and(|exp| exp > now);
        let Some(jti) = claims["jti"].as_str().filter(|_| valid) else {
            return Ok(None);
        };
        let generation = self.store.changes().generation(Change::Tokens);
        let standing = match self.checks.get(jti, generation) {
            Some(standing) => standing,
            None => {
                let standing = self.standing(&claims).await?;
                self.checks.put(jti, generation, standing.clone());
                standing
            }
        };
        Ok(standing.map(|user| ActiveToken { claims, user }))
    }

    async fn standing(&self, claims: &Value) -> Result<Standing, StoreError> {
        let (Some(sub), Some(client_id), Some(jti)) = (
            claims["sub"].as_str(),
            claims["client_id"].as_str(),
            claims["jti"].as_str(),
        ) else {
            return Ok(None);
        };
        let sep = claims["sep"].as_i64();
        let client = if client_id == self.first_party.id {
            Some(self.first_party.as_ref().clone())
        } else {
            self.client(client_id).await?
        };
        // A deleted client's tokens end with it.
        let Some(client) = client else {
            return Ok(None);
        };
        if sub == client_id && sep.is_none() {
            let revoked = self.store.is_access_token_revoked(jti).await?;
            return Ok((!revoked).then_some(None));
        }
        let consent_since = (!client.skip_consent && !client.is_first_party())
            .then(|| (client_id, claims["iat"].as_i64().unwrap_or(0)));
        let holder = self
            .store
            .find_token_holder(
                sub,
                jti,
                claims["sid"].as_str(),
                consent_since,
                sep.unwrap_or(0),
            )
            .await?;
        Ok(match holder {
            Some((user, good)) if good && !user.disabled && sep == Some(user.session_epoch) => {
                Some(Some(user))
            }
            _ => None,
        })
    }
}

/// How long a token check is reused. A resource server that introspects (or calls userinfo
/// with) the same token on every request then costs one query a second, not one a request.
const CHECK_TTL: Duration = Duration::from_secs(1);
const CHECK_MAX_ENTRIES: usize = 50_000;

/// Token checks by `jti`, each reused for `CHECK_TTL`. A write that can end tokens, here or on
/// another node (the change bus), moves the `Tokens` generation, which drops every entry at
/// once; `CHECK_TTL` bounds the rest (a lost bus message).
#[derive(Clone, Default)]
pub(super) struct CheckCache(Arc<RwLock<HashMap<String, Checked>>>);

struct Checked {
    at: Instant,
    generation: u64,
    standing: Standing,
}

impl CheckCache {
    fn get(&self, jti: &str, generation: u64) -> Option<Standing> {
        let entries = self.0.read().ok()?;
        let entry = entries.get(jti)?;
        (entry.generation == generation && entry.at.elapsed() < CHECK_TTL)
            .then(|| entry.standing.clone())
    }

    fn put(&self, jti: &str, generation: u64, standing: Standing) {
        if let Ok(mut entries) = self.0.write() {
            if entries.len() >= CHECK_MAX_ENTRIES {
                entries.retain(|_, e| e.at.elapsed() < CHECK_TTL);
                if entries.len() >= CHECK_MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                jti.to_string(),
                Checked {
                    at: Instant::now(),
                    generation,
                    standing,
                },
            );
        }
    }
}
