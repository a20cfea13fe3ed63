//! WebAuthn credentials (passkeys, security keys) and the ceremonies under way.

use sqlx::FromRow;

use super::{Store, StoreResult, execute, execute_with_events, on_pool};
use crate::events::NewEvent;

#[derive(Clone, Debug, FromRow)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON.
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What an accepted assertion changes on its credential.
pub struct PasskeyUse<'a> {
    pub credential: &'a str,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub at: i64,
}

const COLUMNS: &str = "id, user_id, credential_id, name, credential, sign_count, backup_eligible, \
     backup_state, created_at, last_used_at";

impl Store {
    pub async fn passkeys_of(&self, user_id: &str) -> StoreResult<Vec<PasskeyRow>> {
        let sql = format!("select {COLUMNS} from passkeys where user_id = $1 order by created_at");
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, PasskeyRow>(&sql)
                .bind(user_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    pub async fn has_passkey(&self, user_id: &str) -> StoreResult<bool> {
        let found = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>("select 1 from passkeys where user_id = $1 limit 1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(found.is_some())
    }

    pub async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<PasskeyRow>> {
        let sql = format!("select {COLUMNS} from passkeys where credential_id = $1");
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, PasskeyRow>(&sql)
                .bind(credential_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// Stores a new credential; a unique violation when its credential id is registered already
    /// (to this account or another).
    pub async fn insert_passkey(
        &self,
        row: &PasskeyRow,
        event: Option<NewEvent>,
    ) -> StoreResult<()> {
        execute_with_events!(
            self,
            event.as_slice(),
            "insert into passkeys (id, user_id, credential_id, name, credential, sign_count, \
             backup_eligible, backup_state, created_at, last_used_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &row.id,
            &row.user_id,
            &row.credential_id,
            &row.name,
            &row.credential,
            row.sign_count,
            row.backup_eligible,
            row.backup_state,
            row.created_at,
            row.last_used_at,
        );
        // Cached token checks carry the user's factors.
        self.security_changed_for(&[&row.user_id]).await;
        Ok(())
    }

    /// Records an accepted assertion. The counter only moves forward (WebAuthn §7.2, step 22):
    /// false when another assertion of this credential with the same or a higher counter was
    /// accepted meanwhile, which only a copy of the credential can produce. Authenticators
    /// without a counter always send 0.
    pub async fn use_passkey(&self, id: &str, used: &PasskeyUse<'_>) -> StoreResult<bool> {
        let changed = execute!(
            self,
            "update passkeys set credential = $1, sign_count = $2, backup_eligible = $3, \
             backup_state = $4, last_used_at = $5 \
             where id = $6 and (sign_count < $2 or (sign_count = 0 and $2 = 0))",
            used.credential,
            used.sign_count,
            used.backup_eligible,
            used.backup_state,
            used.at,
            id,
        )?;
        Ok(changed == 1)
    }

    /// False when the account has no such passkey.
    pub async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> StoreResult<bool> {
        let changed = execute!(
            self,
            "update passkeys set name = $1 where user_id = $2 and id = $3",
            name,
            user_id,
            id,
        )?;
        Ok(changed == 1)
    }

    /// False when the account has no such passkey.
    pub async fn delete_passkey(
        &self,
        user_id: &str,
        id: &str,
        event: Option<NewEvent>,
    ) -> StoreResult<bool> {
        let changed = execute_with_events!(
            self,
            event.as_slice(),
            "delete from passkeys where user_id = $1 and id = $2",
            user_id,
            id,
        );
        if changed == 1 {
            self.security_changed_for(&[user_id]).await;
        }
        Ok(changed == 1)
    }

    /// Records that the ceremony `id` (the SHA-256 of its handle) was finished: false when it
    /// was already, here or on another node (the primary key decides between racing requests).
    pub async fn use_passkey_ceremony(&self, id: &str, expires_at: i64) -> StoreResult<bool> {
        let recorded = execute!(
            self,
            "insert into passkey_ceremonies_used (id, expires_at) values ($1, $2) \
             on conflict (id) do nothing",
            id,
            expires_at,
        )?;
        Ok(recorded == 1)
    }

    pub async fn prune_passkey_ceremonies(&self, now: i64) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "delete from passkey_ceremonies_used where expires_at <= $1",
            now
        )?)
    }
}
