//! Ending tokens (RFC 7009) and describing them (RFC 7662).

use serde_json::{Value, json};

use super::{ActiveToken, TokenService};
use crate::crypto;
use crate::input::space_list;
use crate::store::{RefreshTokenRow, StoreError};

impl TokenService {
    /// RFC 7009 §2.1: a refresh token ends its whole family; an access token is denied until it
    /// expires. Only the client the token was issued to may revoke it; anything else is
    /// ignored, and the caller answers the same either way (§2.2).
    pub async fn revoke(&self, client_id: &str, token: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        if let Some(row) = self.find_refresh_token(token).await? {
            if row.client_id == client_id {
                self.store
                    .revoke_refresh_family(&row.family_id, now, None)
                    .await?;
                self.metrics.revoked("refresh_token");
            }
        } else if let Some((_, claims)) = self.verify(token).await
            && claims["client_id"].as_str() == Some(client_id)
            && let (Some(jti), Some(exp)) = (claims["jti"].as_str(), claims["exp"].as_i64())
        {
            self.store.revoke_access_token(jti, exp).await?;
            self.metrics.revoked("access_token");
        }
        Ok(())
    }

    /// Ends the sign-in (token family) of a refresh token of `client_id`; the user it belonged
    /// to, when there was one.
    pub async fn end_sign_in(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<Option<String>, StoreError> {
        match self.find_refresh_token(refresh_token).await? {
            Some(row) if row.client_id == client_id => {
                self.store
                    .revoke_refresh_family(&row.family_id, self.clock.now(), None)
                    .await?;
                self.metrics.revoked("sign_in");
                Ok(Some(row.user_id))
            }
            _ => Ok(None),
        }
    }

    /// Denies an active access token until it expires.
    pub async fn revoke_access_token(&self, token: &ActiveToken) -> Result<(), StoreError> {
        if let (Some(jti), Some(exp)) = (token.jti(), token.expires_at()) {
            self.store.revoke_access_token(jti, exp).await?;
            self.metrics.revoked("access_token");
        }
        Ok(())
    }

    /// RFC 7662 §2.2: the description of an active token, `None` for anything else.
    pub async fn inspect(&self, token: &str) -> Result<Option<Value>, StoreError> {
        let now = self.clock.now();
        if let Some(row) = self.find_refresh_token(token).await? {
            let live = row.revoked_at.is_none() && row.rotated_at.is_none() && row.expires_at > now;
            let user = self.store.find_user_by_id(&row.user_id).await?;
            let user_ok = user.is_some_and(|u| !u.disabled && u.session_epoch == row.session_epoch);
            if !(live && user_ok) {
                return Ok(None);
            }
            let client = self.client(&row.client_id).await?;
            let resources = space_list(&row.resources);
            let audience = match &client {
                Some(client) => self.audience(client, &resources),
                None => return Ok(None),
            };
            return Ok(Some(json!({
                "active": true,
                "token_type": "refresh_token",
                "sub": row.user_id,
                "client_id": row.client_id,
                "scope": row.scope,
                "aud": audience,
                "iat": row.created_at,
                "exp": row.expires_at,
                "iss": *self.issuer,
            })));
        }
        let Some(active) = self.check(token).await? else {
            return Ok(None);
        };
        let claims = &active.claims;
        Ok(Some(json!({
            "active": true,
            "token_type": "access_token",
            "sub": claims["sub"],
            "client_id": claims["client_id"],
            "scope": claims["scope"],
            "aud": claims["aud"],
            "iat": claims["iat"],
            "exp": claims["exp"],
            "iss": claims["iss"],
            "jti": claims["jti"],
        })))
    }

    /// The refresh token `token` stands for, if any. Our refresh tokens are opaque base64url:
    /// a token with dots can only be a JWT, and is not looked up.
    async fn find_refresh_token(&self, token: &str) -> Result<Option<RefreshTokenRow>, StoreError> {
        if token.contains('.') {
            return Ok(None);
        }
        self.store
            .find_refresh_token(&crypto::sha256_hex(token))
            .await
    }
}
