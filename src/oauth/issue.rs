//! Building the tokens a person's sign-in yields: RFC 9068 access tokens and OIDC ID tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use super::OAuthError;
use super::clients::Client;
use super::discovery::issuer;
use crate::app::AppState;
use crate::store::User;
use crate::tokens::{SigningAlg, jwt};

/// ID tokens live an hour: they prove a sign-in, they are not for calling APIs.
pub const ID_TOKEN_TTL: i64 = 3600;

/// What a grant hands to the token builder.
pub struct Grant<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    /// Methods recorded at sign-in (`pwd`, `totp`, …).
    pub methods: &'a [String],
}

/// RFC 8176 values: passwords are `pwd`, every one-time code is `otp`, two of them make `mfa`.
pub fn amr(methods: &[String]) -> Vec<&'static str> {
    let mut amr: Vec<&'static str> = Vec::new();
    for method in methods {
        let value = match method.as_str() {
            "pwd" => "pwd",
            "totp" | "email_otp" | "recovery_code" => "otp",
            _ => continue,
        };
        if !amr.contains(&value) {
            amr.push(value);
        }
    }
    if amr.len() > 1 {
        amr.push("mfa");
    }
    amr
}

/// OIDC Core §3.1.3.6: the left half of the hash of the access token, with the hash of the
/// signing algorithm (SHA-512 for Ed25519).
fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        SigningAlg::EdDsa => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

fn has(scope: &[String], name: &str) -> bool {
    scope.iter().any(|s| s == name)
}

/// A signed access token with what the caller needs to track it.
pub struct AccessToken {
    pub token: String,
    pub ttl: i64,
    pub jti: String,
}

/// The audience of first-party API tokens (RFC 9068 §3: `aud` names the resource).
pub fn api_audience(state: &AppState) -> String {
    format!("{}/api/v1", issuer(state))
}

/// The access token for a person's grant. First-party API tokens are for the API's audience
/// and name their sign-in (`sid`, the token family), which ends them when the sign-in ends.
pub fn access_token(
    state: &AppState,
    grant: &Grant<'_>,
    family_id: &str,
) -> Result<AccessToken, OAuthError> {
    let now = state.clock.now();
    let ttl = grant.client.access_token_ttl;
    let issuer = issuer(state);
    let jti = uuid::Uuid::now_v7().simple().to_string();
    let first_party = grant.client.is_first_party();
    let audience = if first_party {
        api_audience(state)
    } else {
        issuer.clone()
    };
    let mut claims = json!({
        "iss": issuer,
        "sub": grant.user.id,
        "aud": audience,
        "client_id": grant.client.id,
        "scope": grant.scope.join(" "),
        "iat": now,
        "exp": now + ttl,
        "auth_time": grant.auth_time,
        "jti": jti,
        "roles": grant.user.roles,
        // The user's session epoch: a password reset or "sign out everywhere" bumps it, which
        // makes this token inactive at once.
        "sep": grant.user.session_epoch,
    });
    if first_party {
        claims["sid"] = json!(family_id);
    }
    Ok(AccessToken {
        token: super::token::sign_access_token(state, &claims)?,
        ttl,
        jti,
    })
}

/// The ID token, when `openid` was granted.
pub fn id_token(
    state: &AppState,
    grant: &Grant<'_>,
    access_token: &str,
) -> Result<Option<String>, OAuthError> {
    if !has(grant.scope, "openid") {
        return Ok(None);
    }
    let now = state.clock.now();
    let key = state
        .keys
        .snapshot()
        .active(state.config.signing_alg, now)
        .ok_or_else(|| OAuthError::server_error("no active signing key"))?;
    let user = grant.user;
    let mut claims = json!({
        "iss": issuer(state),
        "sub": user.id,
        "aud": grant.client.id,
        "azp": grant.client.id,
        "iat": now,
        "exp": now + ID_TOKEN_TTL,
        "auth_time": grant.auth_time,
        "amr": amr(grant.methods),
        "at_hash": at_hash(key.alg, access_token),
    });
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    add_user_claims(&mut claims, user, grant.scope);
    Ok(Some(jwt::sign(&key, "JWT", &claims)?))
}

/// Claims by scope (OIDC Core §5.4), shared with userinfo.
pub fn add_user_claims(claims: &mut Value, user: &User, scope: &[String]) {
    if has(scope, "email") {
        claims["email"] = json!(user.email);
        claims["email_verified"] = json!(user.email_verified);
    }
    if has(scope, "profile") {
        if let Some(name) = &user.display_name {
            claims["name"] = json!(name);
        }
        claims["preferred_username"] = json!(user.email);
        claims["updated_at"] = json!(user.updated_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_maps_methods_to_rfc_8176_values() {
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(amr(&methods(&["pwd"])), vec!["pwd"]);
        assert_eq!(amr(&methods(&["pwd", "totp"])), vec!["pwd", "otp", "mfa"]);
        assert_eq!(
            amr(&methods(&["pwd", "recovery_code"])),
            vec!["pwd", "otp", "mfa"]
        );
    }

    /// The value itself is checked end to end by the openidconnect crate in the flow tests.
    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        assert_eq!(
            at_hash(SigningAlg::Rs256, "token").len(),
            22,
            "16 bytes of SHA-256"
        );
        assert_eq!(
            at_hash(SigningAlg::EdDsa, "token").len(),
            43,
            "32 bytes of SHA-512"
        );
        assert_ne!(
            at_hash(SigningAlg::Rs256, "token"),
            at_hash(SigningAlg::Rs256, "other")
        );
    }
}
