//! Compact JWS (RFC 7515) with our cached keys: no key is parsed per token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::keys::{KeyError, KeySet, SigningKey};

/// Signs `claims` with `key`; `typ` is `at+jwt` for access tokens (RFC 9068), `JWT` otherwise.
pub fn sign(key: &SigningKey, typ: &str, claims: &Value) -> Result<String, KeyError> {
    let header = json!({ "alg": key.alg.name(), "typ": typ, "kid": key.kid });
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// The `kid` a token's header names, before anything is verified.
pub fn unverified_kid(token: &str) -> Option<String> {
    let header_b64 = token.split('.').next()?;
    if header_b64.len() > 2048 {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
    Some(header.get("kid")?.as_str()?.to_string())
}

/// The header and claims of a token signed by one of our keys, if its signature holds.
/// Expiry and the other claims are for the caller to check.
pub fn verify(keys: &KeySet, token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (header_b64, claims_b64, signature_b64) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || token.len() > 16 * 1024 {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
    let key = keys.by_kid(header.get("kid")?.as_str()?)?;
    if header.get("alg")?.as_str()? != key.alg.name() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).ok()?;
    let signed_len = header_b64.len() + 1 + claims_b64.len();
    if !key.verify(&token.as_bytes()[..signed_len], &signature) {
        return None;
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).ok()?).ok()?;
    Some((header, claims))
}
