//! Small cryptographic helpers: random tokens, hashes for storing them, and encryption of
//! secrets at rest with the server key.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::SecretKey;

/// 256 random bits, URL-safe: for links sent by mail and other bearer tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A uniformly random decimal code with `digits` digits, e.g. `042917`.
pub fn random_digits(digits: u32) -> String {
    let max = 10u32.pow(digits);
    let n = rand::random_range(0..max);
    format!("{n:0width$}", width = digits as usize)
}

/// How high-entropy tokens are stored: SHA-256, hex. A database leak reveals no usable token.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// How low-entropy secrets (short codes) are stored: HMAC-SHA256 with the server key, so a
/// database leak alone cannot brute-force them.
pub fn keyed_hash(key: &SecretKey, value: &str) -> String {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this branch cannot happen with a 32-byte key.
        Err(_) => return sha256_hex(value),
    };
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decrypt a stored secret: wrong server key or damaged data")]
pub struct DecryptError;

/// Encrypts with XChaCha20-Poly1305 under the server key. `context` (for example the user id)
/// is authenticated, so a ciphertext copied to another row does not decrypt.
pub fn seal(key: &SecretKey, context: &str, plaintext: &[u8]) -> String {
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let payload = Payload {
        msg: plaintext,
        aad: context.as_bytes(),
    };
    // Encryption with a valid key and nonce cannot fail for in-memory buffers.
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), payload)
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

pub fn open(key: &SecretKey, context: &str, sealed: &str) -> Result<Vec<u8>, DecryptError> {
    let bytes = STANDARD.decode(sealed).map_err(|_| DecryptError)?;
    if bytes.len() < 24 {
        return Err(DecryptError);
    }
    let (nonce, ciphertext) = bytes.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let payload = Payload {
        msg: ciphertext,
        aad: context.as_bytes(),
    };
    cipher
        .decrypt(XNonce::from_slice(nonce), payload)
        .map_err(|_| DecryptError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let key = SecretKey::from_bytes([7; 32]);
        let sealed = seal(&key, "user-1", b"JBSWY3DPEHPK3PXP");
        assert_eq!(
            open(&key, "user-1", &sealed).ok(),
            Some(b"JBSWY3DPEHPK3PXP".to_vec())
        );
        assert!(open(&key, "user-2", &sealed).is_err());
        assert!(open(&SecretKey::from_bytes([8; 32]), "user-1", &sealed).is_err());
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
    }

    #[test]
    fn codes_have_the_requested_digits() {
        for _ in 0..100 {
            let code = random_digits(6);
            assert_eq!(code.len(), 6);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }
}
