//! `revoked_access_tokens`: access tokens denied before they expire (RFC 7009), by `jti`.

use super::{Store, StoreResult, execute, read_nearby};

impl Store {
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
        execute!(
            self,
            "insert into revoked_access_tokens (jti, expires_at) values ($1, $2) \
             on conflict (jti) do nothing",
            jti,
            expires_at,
        )?;
        self.security_changed_for(&[jti]).await;
        Ok(())
    }

    pub async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        // Revoked elsewhere is seen once the replica replays it (and the change log drops the
        // cached checks); revoked here is read from the primary until then.
        let found = read_nearby!(self, &[jti], |_: &Option<String>| true, |pool| {
            sqlx::query_scalar::<_, String>("select jti from revoked_access_tokens where jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await
        })?;
        Ok(found.is_some())
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub async fn prune_revoked_access_tokens(&self, now: i64) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "delete from revoked_access_tokens where expires_at < $1",
            now
        )?)
    }
}
