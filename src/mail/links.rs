//! Single-use tokens (for mailed links, and the API's `mfa_token`): random, stored only as
//! their SHA-256 hash.

use crate::app::AppState;
use crate::crypto;
use crate::store::StoreResult;

/// Creates a token for `purpose` that `user_id` may use once within `lifetime_secs`, and
/// returns the public URL of `path` carrying it.
pub async fn single_use_link(
    state: &AppState,
    user_id: &str,
    purpose: &str,
    lifetime_secs: i64,
    path: &str,
) -> StoreResult<String> {
    let token = single_use_token(state, user_id, purpose, lifetime_secs).await?;
    let mut link = state.config.public_url.clone();
    link.set_path(path);
    link.query_pairs_mut().append_pair("token", &token);
    Ok(link.into())
}

/// Creates a token for `purpose` that `user_id` may use once within `lifetime_secs`.
pub async fn single_use_token(
    state: &AppState,
    user_id: &str,
    purpose: &str,
    lifetime_secs: i64,
) -> StoreResult<String> {
    let token = crypto::random_token();
    let now = state.clock.now();
    state
        .store
        .create_email_token(
            &crypto::sha256_hex(&token),
            user_id,
            purpose,
            now,
            now + lifetime_secs,
        )
        .await?;
    Ok(token)
}
