//! Token signing keys: generated on first start, stored encrypted in the database (so every
//! node signs with the same keys), and parsed once into cached key pairs.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub use super::key_creation::{create_key, ensure_keys};
use crate::config::SecretKey;
use crate::crypto;
use crate::store::{Store, StoreError};

/// The JWS algorithms Portcullis signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlg {
    Rs256,
    Es256,
    EdDsa,
}

impl SigningAlg {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation or parsing failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decrypt(#[from] crypto::DecryptError),
}

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One parsed key pair with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    pub jwk: Value,
    material: Material,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.kid, self.alg.name())
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn crypto_err(e: impl std::fmt::Display) -> KeyError {
    KeyError::Crypto(e.to_string())
}

impl SigningKey {
    fn from_pkcs8(
        kid: &str,
        alg: SigningAlg,
        pkcs8: &[u8],
        activates_at: i64,
        retired_at: Option<i64>,
    ) -> Result<Self, KeyError> {
        let (material, public_key, mut jwk) = match alg {
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(crypto_err)?;
                let public = pair.public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                let bytes = public.as_ref().to_vec();
                (Material::Rsa(pair), bytes, jwk)
            }
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(crypto_err)?;
                let point = pair.public_key().as_ref().to_vec();
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                if point.len() != 65 {
                    return Err(KeyError::Crypto("unexpected P-256 public key".into()));
                }
                let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]) });
                (Material::Ec(pair), point, jwk)
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(crypto_err)?;
                let public = pair.public_key().as_ref().to_vec();
                let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&public) });
                (Material::Ed(pair), public, jwk)
            }
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.name());
        jwk["use"] = json!("sig");
        Ok(Self {
            kid: kid.into(),
            alg,
            activates_at,
            retired_at,
            jwk,
            material,
            public_key,
        })
    }

    /// A new key that lives only in memory (tests use it to play another provider).
    pub fn generate(alg: SigningAlg, kid: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8(kid, alg, &generate_pkcs8(alg)?, 0, None)
    }

    /// Signs the JWS signing input (`header.payload`).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.material {
            Material::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(crypto_err)?;
                Ok(signature)
            }
            Material::Ec(pair) => Ok(pair
                .sign(&SystemRandom::new(), message)
                .map_err(crypto_err)?
                .as_ref()
                .to_vec()),
            Material::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match self.alg {
            SigningAlg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            SigningAlg::Es256 => &ECDSA_P256_SHA256_FIXED,
            SigningAlg::EdDsa => &ED25519,
        };
        UnparsedPublicKey::new(alg, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

pub(super) fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    Ok(match alg {
        SigningAlg::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(crypto_err)?;
            let der: Pkcs8V1Der = pair.as_der().map_err(crypto_err)?;
            der.as_ref().to_vec()
        }
        SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(crypto_err)?
            .to_pkcs8v1()
            .map_err(crypto_err)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDsa => Ed25519KeyPair::generate()
            .map_err(crypto_err)?
            .to_pkcs8v1()
            .map_err(crypto_err)?
            .as_ref()
            .to_vec(),
    })
}

/// The parsed keys, newest activation last.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    /// What the rows said when this set was read, so a reload that finds no change keeps it.
    read_from: Vec<(String, i64, Option<i64>)>,
    /// The serialised JWKS and when it was made: rebuilt at most once a minute.
    jwks_cache: std::sync::Mutex<Option<(i64, axum::body::Bytes)>>,
}

impl KeySet {
    /// The key that signs new tokens of `alg`: the newest one already active.
    pub fn active(&self, alg: SigningAlg, now: i64) -> Option<Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && k.activates_at <= now)
            .max_by_key(|k| (k.activates_at, k.kid.clone()))
            .cloned()
    }

    pub fn by_kid(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid).cloned()
    }

    /// Published keys: the active and upcoming ones, and retired ones until every token they
    /// may have signed has expired (`keep_after_retire` seconds).
    pub fn jwks(&self, now: i64, keep_after_retire: i64) -> Value {
        let keys: Vec<&Value> = self
            .keys
            .iter()
            .filter(|k| k.retired_at.is_none_or(|at| at + keep_after_retire > now))
            .map(|k| &k.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// The JWKS as served, cached for a minute (retired keys drop out on that scale anyway).
    pub fn jwks_body(&self, now: i64, keep_after_retire: i64) -> axum::body::Bytes {
        if let Ok(cache) = self.jwks_cache.lock()
            && let Some((made, body)) = cache.as_ref()
            && now - made < 60
            && now >= *made
        {
            return body.clone();
        }
        let body = axum::body::Bytes::from(self.jwks(now, keep_after_retire).to_string());
        if let Ok(mut cache) = self.jwks_cache.lock() {
            *cache = Some((now, body.clone()));
        }
        body
    }
}

/// The shared, refreshable key set.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    current: Arc<RwLock<Arc<KeySet>>>,
    /// When a token's unknown `kid` last made this node read the keys; held while reading,
    /// so requests that arrive meanwhile wait for that read instead of starting their own.
    unknown_kid_read: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

/// How often every node reads the keys even without a change message (one lost on the bus).
pub const READ_EVERY: Duration = Duration::from_secs(5);

/// The shortest `keys rotate --delay`: a new key must be in every node's JWKS before any node
/// signs with it. The bus brings it at once; a node that lost the message reads it within
/// `READ_EVERY`; twice that leaves room for a slow read.
pub const MIN_ROTATION_DELAY: Duration = Duration::from_secs(10);

/// At most one read of the keys a second for tokens whose `kid` this node does not know:
/// made-up kids cannot turn into a query each.
const UNKNOWN_KID_READ_EVERY: Duration = Duration::from_secs(1);

impl Keys {
    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the keys from the database (picks up `keys rotate` from another process); the
    /// keys are parsed again only when the rows changed.
    pub async fn reload(&self, store: &Store, secret: &SecretKey) -> Result<(), KeyError> {
        let rows = store.signing_keys().await?;
        let read_from: Vec<_> = rows
            .iter()
            .map(|row| (row.kid.clone(), row.activates_at, row.retired_at))
            .collect();
        if self.snapshot().read_from == read_from {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(alg) = SigningAlg::parse(&row.alg) else {
                continue;
            };
            let pkcs8 = crypto::open(secret, &row.kid, &row.private_key_enc)?;
            keys.push(Arc::new(SigningKey::from_pkcs8(
                &row.kid,
                alg,
                &pkcs8,
                row.activates_at,
                row.retired_at,
            )?));
        }
        let set = Arc::new(KeySet {
            keys,
            read_from,
            jwks_cache: Default::default(),
        });
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }
    /// A token names `kid`, which this node does not know: it may be a key made a moment ago by
    /// another node or the CLI, so the keys are read again, at most once a second.
    pub async fn reload_for_unknown(&self, kid: &str, store: &Store, secret: &SecretKey) {
        let mut last_read = self.unknown_kid_read.lock().await;
        if self.snapshot().by_kid(kid).is_some() {
            return; // read meanwhile by the request that held the lock
        }
        if last_read.is_some_and(|at| at.elapsed() < UNKNOWN_KID_READ_EVERY) {
            return;
        }
        *last_read = Some(Instant::now());
        if let Err(e) = self.reload(store, secret).await {
            tracing::warn!(error = %e, "could not read the signing keys for an unknown kid");
        }
    }
}
