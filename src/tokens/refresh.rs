//! The refresh grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use super::issue::{Issued, Lineage, PersonGrant};
use super::{Internal, TokenService, TokenSet};
use crate::audit::RequestMeta;
use crate::clients::Client;
use crate::crypto;
use crate::input::space_list;

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh token is invalid, expired or revoked")]
    Invalid,
    /// A rotated token came back: its whole family was ended. The person and client are for
    /// the audit log.
    #[error("the refresh token is invalid, expired or revoked")]
    Reused { user_id: String, client_id: String },
    #[error("the scope {0} was not granted")]
    ScopeNotGranted(String),
    #[error("the resource {0} was not granted")]
    ResourceNotGranted(String),
    #[error(transparent)]
    Internal(#[from] Internal),
}

impl From<crate::store::StoreError> for RefreshError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Internal(error.into())
    }
}

/// What a client may ask for when it refreshes.
#[derive(Default)]
pub struct Narrowing<'a> {
    /// A scope within the granted one (RFC 6749 §6); the new refresh token keeps the grant.
    pub scope: Option<&'a str>,
    /// Some of the granted resources (RFC 8707 §2.2).
    pub resources: &'a [String],
}

impl TokenService {
    /// Every use returns a new refresh token; a rotated token presented again ends its whole
    /// family. There is no grace window, so two concurrent refreshes with the same token end
    /// the family: clients must serialise their refreshes.
    pub async fn refresh(
        &self,
        meta: &RequestMeta,
        client: &Client,
        token: &str,
        narrowing: &Narrowing<'_>,
    ) -> Result<TokenSet, RefreshError> {
        let token_hash = crypto::sha256_hex(token);
        let now = self.clock.now();
        let (row, user) = self
            .store
            .find_refresh_token_and_holder(&token_hash)
            .await?
            .ok_or(RefreshError::Invalid)?;
        if row.client_id != client.id || row.revoked_at.is_some() || row.expires_at <= now {
            return Err(RefreshError::Invalid);
        }
        let reused = || async {
            self.metrics.refresh_reuse_detected();
            self.metrics.revoked("sign_in");
            tracing::warn!(client_id = %client.id, "a rotated refresh token was reused; revoking its family");
            let event = self.events.event(
                crate::events::EventType::RefreshTokenReuseDetected,
                &row.user_id,
                serde_json::json!({
                    "user_id": row.user_id,
                    "email": user.email,
                    "client_id": client.id,
                    "family_id": row.family_id,
                }),
            );
            self.store
                .revoke_refresh_family(&row.family_id, now, event)
                .await?;
            Err::<TokenSet, RefreshError>(RefreshError::Reused {
                user_id: row.user_id.clone(),
                client_id: client.id.clone(),
            })
        };
        if row.rotated_at.is_some() {
            return reused().await;
        }
        if user.disabled || user.session_epoch != row.session_epoch {
            self.store
                .revoke_refresh_family(&row.family_id, now, None)
                .await?;
            return Err(RefreshError::Invalid);
        }
        let granted = space_list(&row.scope);
        let access_scope = match narrowing.scope {
            Some(requested) => {
                let requested = space_list(requested);
                if let Some(bad) = requested.iter().find(|s| !granted.contains(s)) {
                    return Err(RefreshError::ScopeNotGranted(bad.clone()));
                }
                requested
            }
            None => granted.clone(),
        };
        let resources = space_list(&row.resources);
        if let Some(bad) = narrowing.resources.iter().find(|r| !resources.contains(r)) {
            return Err(RefreshError::ResourceNotGranted(bad.clone()));
        }
        let requested_resources = if narrowing.resources.is_empty() {
            &resources
        } else {
            narrowing.resources
        };
        let methods = space_list(&row.amr);
        let grant = PersonGrant {
            client,
            user: &user,
            scope: &granted,
            access_scope: &access_scope,
            resources: &resources,
            audience: self.audience(client, requested_resources),
            nonce: None,
            auth_time: row.auth_time,
            methods: &methods,
        };
        let lineage = Lineage::Rotation {
            family_id: &row.family_id,
            family_created_at: row.family_created_at.unwrap_or(row.created_at),
            old_hash: &token_hash,
        };
        match self
            .person_tokens(meta, &grant, row.session_epoch, lineage)
            .await?
        {
            Issued::Tokens(tokens) => {
                self.metrics.token_issued("refresh_token");
                Ok(tokens)
            }
            Issued::AlreadyRotated => reused().await,
            Issued::CodeReplayed => {
                Err(Internal::from(anyhow::anyhow!("a refresh has no code before it")).into())
            }
        }
    }
}
