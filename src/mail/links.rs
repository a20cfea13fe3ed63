//! Single-use tokens (for mailed links, and the API's `mfa_token`): random, stored only as
//! their SHA-256 hash.

use crate::app::AppState;
use crate::crypto;
use crate::store::StoreResult;

/// Creates a token for `purpose` that `user` may use once within `lifetime_secs`, and queues
/// `mail(link)` to their address in the same transaction (the link is the public URL of `path`
/// carrying the token): the link exists exactly when its mail is on its way.
pub async fn mail_single_use_link(
    state: &AppState,
    user: &crate::store::User,
    purpose: &str,
    lifetime_secs: i64,
    path: &str,
    mail: impl FnOnce(&str) -> super::Mail,
) -> StoreResult<()> {
    let token = crypto::random_token();
    let mut link = state.config.public_url.clone();
    link.set_path(path);
    link.query_pairs_mut().append_pair("token", &token);
    let now = state.clock.now();
    let queued = super::queue::sealed(
        &state.config.secret_key,
        &user.email,
        &mail(link.as_str()),
        now,
    );
    state
        .store
        .create_email_token(
            &crypto::sha256_hex(&token),
            &user.id,
            purpose,
            now,
            now + lifetime_secs,
            Some(&queued),
        )
        .await
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
            None,
        )
        .await?;
    Ok(token)
}
