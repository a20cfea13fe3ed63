//! Making signing keys: the first one of a database (one for the whole cluster) and rotations.

use super::keys::{KeyError, SigningAlg, crypto_err, generate_pkcs8};
use crate::config::SecretKey;
use crate::crypto;
use crate::store::{SigningKeyRow, Store};

/// A new key of `alg`, sealed for the database, that starts signing at `activates_at`.
async fn new_key_row(
    secret: &SecretKey,
    alg: SigningAlg,
    now: i64,
    activates_at: i64,
) -> Result<SigningKeyRow, KeyError> {
    let pkcs8 = tokio::task::spawn_blocking(move || generate_pkcs8(alg))
        .await
        .map_err(crypto_err)??;
    let kid = uuid::Uuid::now_v7().simple().to_string();
    Ok(SigningKeyRow {
        private_key_enc: crypto::seal(secret, &kid, &pkcs8),
        kid,
        alg: alg.name().into(),
        created_at: now,
        activates_at,
        retired_at: None,
    })
}

/// Creates a new key of `alg` that starts signing at `activates_at`, and retires the older keys
/// of that algorithm from the same moment.
pub async fn create_key(
    store: &Store,
    events: &crate::events::Events,
    secret: &SecretKey,
    alg: SigningAlg,
    now: i64,
    activates_at: i64,
) -> Result<String, KeyError> {
    let row = new_key_row(secret, alg, now, activates_at).await?;
    let event = events.event(
        crate::events::EventType::SigningKeyRotated,
        &row.kid,
        serde_json::json!({ "kid": row.kid, "alg": row.alg, "activates_at": crate::events::rfc3339(activates_at) }),
    );
    store.insert_signing_key(&row, event).await?;
    store
        .retire_signing_keys(alg.name(), &row.kid, activates_at)
        .await?;
    Ok(row.kid)
}

/// On start: makes sure a key exists for every algorithm in use. Nodes of a cluster that start
/// together on one database each offer a key; the store keeps the first and refuses the others,
/// so every node then loads the same one.
pub async fn ensure_keys(
    store: &Store,
    secret: &SecretKey,
    algs: &[SigningAlg],
    now: i64,
) -> Result<(), KeyError> {
    let existing = store.signing_keys().await?;
    for alg in algs {
        if existing.iter().any(|k| k.alg == alg.name()) {
            continue;
        }
        let row = new_key_row(secret, *alg, now, now).await?;
        if store.insert_first_signing_key(&row).await? {
            tracing::info!(kid = %row.kid, alg = alg.name(), "generated a token signing key");
        } else {
            tracing::info!(
                alg = alg.name(),
                "another node made the first signing key; using it"
            );
        }
    }
    Ok(())
}
