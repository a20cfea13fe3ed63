//! Redeeming an authorization code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::issue::{Issued, Lineage, PersonGrant};
use super::{Internal, TokenService, TokenSet};
use crate::audit::RequestMeta;
use crate::clients::{Client, MAX_ACCESS_TTL};
use crate::crypto;
use crate::input::{space_list, valid_code_verifier};

/// What the client sends with the code.
pub struct Redemption<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// RFC 8707 §2.2: narrows the audience to some of the resources granted.
    pub resources: &'a [String],
}

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("the code is invalid, expired, already used or was issued to another client")]
    Invalid,
    #[error("redirect_uri does not match the authorization request")]
    RedirectUriMismatch,
    #[error("the code_verifier does not match the code_challenge")]
    VerifierMismatch,
    #[error("a valid code_verifier is required")]
    VerifierMissing,
    #[error("a code_verifier was sent but no code_challenge was")]
    VerifierUnexpected,
    #[error("the resource {0} was not part of the authorization")]
    ResourceNotGranted(String),
    #[error(transparent)]
    Internal(#[from] Internal),
}

impl From<crate::store::StoreError> for RedeemError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl TokenService {
    /// The code must be fresh, unused, issued to this client for this redirect URI, and match
    /// the verifier.
    pub async fn redeem_code(
        &self,
        meta: &RequestMeta,
        client: &Client,
        redemption: &Redemption<'_>,
    ) -> Result<TokenSet, RedeemError> {
        let code_hash = crypto::sha256_hex(redemption.code);
        let now = self.clock.now();
        // RFC 6749 §4.1.2, RFC 9700 §4.2.4: a code used twice revokes what it was exchanged
        // for. Checked before anything else about the request, so a replay is caught whatever
        // it carries. Using it up is the first statement; only when that finds nothing do we
        // look at why (unknown or another client's code is just invalid, and stays unused).
        let Some(row) = self
            .store
            .take_auth_code(&code_hash, &client.id, now)
            .await?
        else {
            let row = self
                .store
                .find_auth_code(&code_hash)
                .await?
                .ok_or(RedeemError::Invalid)?;
            if row.client_id != client.id {
                return Err(RedeemError::Invalid);
            }
            tracing::warn!(client_id = %client.id, "an authorization code was presented twice; revoking its tokens");
            self.store.mark_code_replayed(&code_hash, now).await?;
            self.revoke_tokens_of_code(&code_hash).await?;
            return Err(RedeemError::Invalid);
        };
        if row.expires_at <= now {
            return Err(RedeemError::Invalid);
        }
        if redemption.redirect_uri != Some(row.redirect_uri.as_str()) {
            return Err(RedeemError::RedirectUriMismatch);
        }
        check_verifier(row.code_challenge.as_deref(), redemption.code_verifier)?;
        let granted_resources = space_list(&row.resources);
        if let Some(bad) = redemption
            .resources
            .iter()
            .find(|r| !granted_resources.contains(r))
        {
            return Err(RedeemError::ResourceNotGranted(bad.clone()));
        }
        let Some(user) = self
            .store
            .find_user_by_id(&row.user_id)
            .await?
            .filter(|u| !u.disabled)
        else {
            return Err(RedeemError::Invalid);
        };
        let scope = space_list(&row.scope);
        let methods = space_list(&row.amr);
        let requested = if redemption.resources.is_empty() {
            &granted_resources
        } else {
            redemption.resources
        };
        let grant = PersonGrant {
            client,
            user: &user,
            scope: &scope,
            access_scope: &scope,
            resources: &granted_resources,
            audience: self.audience(client, requested),
            nonce: row.nonce.as_deref(),
            auth_time: row.auth_time,
            methods: &methods,
        };
        let lineage = Lineage::Code {
            code_hash: &code_hash,
        };
        let tokens = match self
            .person_tokens(meta, &grant, user.session_epoch, lineage)
            .await?
        {
            Issued::Tokens(tokens) => tokens,
            // A second redemption raced this one and may have looked for these tokens before
            // they were stored: they are ended here.
            Issued::CodeReplayed => {
                self.revoke_tokens_of_code(&code_hash).await?;
                return Err(RedeemError::Invalid);
            }
            Issued::AlreadyRotated => return Err(RedeemError::Invalid),
        };
        self.metrics.token_issued("authorization_code");
        Ok(tokens)
    }

    /// Ends the refresh family and the access token a code was exchanged for.
    async fn revoke_tokens_of_code(&self, code_hash: &str) -> Result<(), Internal> {
        let now = self.clock.now();
        self.store
            .revoke_refresh_tokens_of_code(code_hash, now)
            .await?;
        if let Some(jti) = self.store.code_access_jti(code_hash).await? {
            self.store
                .revoke_access_token(&jti, now + MAX_ACCESS_TTL)
                .await?;
        }
        Ok(())
    }
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) must equal the challenge.
fn check_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), RedeemError> {
    match (challenge, verifier) {
        (Some(challenge), Some(verifier)) if valid_code_verifier(verifier) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if crypto::constant_time_eq(&computed, challenge) {
                Ok(())
            } else {
                Err(RedeemError::VerifierMismatch)
            }
        }
        (Some(_), _) => Err(RedeemError::VerifierMissing),
        (None, Some(_)) => Err(RedeemError::VerifierUnexpected),
        (None, None) => Ok(()),
    }
}
