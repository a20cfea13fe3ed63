//! The claims of our tokens, built in one place: RFC 9068 access tokens, OIDC ID tokens, and
//! the user claims by scope (OIDC Core §5.4) that userinfo shares.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::store::User;
use crate::tokens::SigningAlg;

/// ID tokens live an hour: they prove a sign-in, they are not for calling APIs.
pub const ID_TOKEN_TTL: i64 = 3600;

/// RFC 8176 values: passwords are `pwd`, every one-time code is `otp`, a passkey is the key it
/// proves (`hwk` bound to a device, `swk` synced) with the user verification it requires
/// (`user`); two of them make `mfa`.
pub fn amr(methods: &[String]) -> Vec<&'static str> {
    let mut amr: Vec<&'static str> = Vec::new();
    for method in methods {
        let values: &[&'static str] = match method.as_str() {
            "pwd" => &["pwd"],
            "totp" | "email_otp" | "recovery_code" => &["otp"],
            "hwk" => &["hwk", "user"],
            "swk" => &["swk", "user"],
            _ => continue,
        };
        for value in values {
            if !amr.contains(value) {
                amr.push(value);
            }
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

/// Who an access token speaks for.
pub enum Holder<'a> {
    /// A person, through a client; `family` is the grant the token belongs to (its refresh
    /// token family), which ends the token when it ends.
    Person {
        user: &'a User,
        auth_time: i64,
        family: &'a str,
    },
    /// The client itself (client_credentials, RFC 6749 §4.4).
    Client,
}

/// What goes into an access token besides its holder.
pub struct AccessClaims<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// RFC 8707 / RFC 9068 §3: the resources the token is for, one or several.
    pub audience: &'a [String],
    pub now: i64,
    pub ttl: i64,
    pub jti: &'a str,
}

/// The one builder of access-token claims (RFC 9068 §2.2).
pub fn access_token(claims: &AccessClaims<'_>, holder: &Holder<'_>) -> Value {
    let audience = match claims.audience {
        [one] => json!(one),
        many => json!(many),
    };
    let mut value = json!({
        "iss": claims.issuer,
        "aud": audience,
        "client_id": claims.client_id,
        "scope": claims.scope,
        "iat": claims.now,
        "exp": claims.now + claims.ttl,
        "jti": claims.jti,
    });
    match holder {
        Holder::Person {
            user,
            auth_time,
            family,
        } => {
            value["sub"] = json!(user.id);
            value["auth_time"] = json!(auth_time);
            value["roles"] = json!(user.roles);
            // The user's session epoch: a password reset or "sign out everywhere" bumps it,
            // which makes this token inactive at once.
            value["sep"] = json!(user.session_epoch);
            value["sid"] = json!(family);
        }
        Holder::Client => {
            value["sub"] = json!(claims.client_id);
            value["roles"] = json!([]);
        }
    }
    value
}

/// What an ID token says of a sign-in.
pub struct IdClaims<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub user: &'a User,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub methods: &'a [String],
    pub now: i64,
}

/// OIDC Core §2 ID token claims; `at_hash` binds it to the access token issued with it.
pub fn id_token(claims: &IdClaims<'_>, alg: SigningAlg, access_token: &str) -> Value {
    let mut value = json!({
        "iss": claims.issuer,
        "sub": claims.user.id,
        "aud": claims.client_id,
        "azp": claims.client_id,
        "iat": claims.now,
        "exp": claims.now + ID_TOKEN_TTL,
        "auth_time": claims.auth_time,
        "amr": amr(claims.methods),
        "at_hash": at_hash(alg, access_token),
    });
    if let Some(nonce) = claims.nonce {
        value["nonce"] = json!(nonce);
    }
    add_user_claims(&mut value, claims.user, claims.scope);
    value
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
        assert_eq!(amr(&methods(&["hwk"])), vec!["hwk", "user", "mfa"]);
        assert_eq!(
            amr(&methods(&["pwd", "swk"])),
            vec!["pwd", "swk", "user", "mfa"]
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
