//! Hourly counts for the admin overview (`activity`), and the numbers it shows beside them.

use super::{AuditEvent, Store, StoreResult, on_pool};

/// One hour's count of one thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityCount {
    /// Unix seconds at the start of the hour.
    pub hour: i64,
    pub kind: String,
    pub label: String,
    pub count: i64,
}

/// The installation at a glance.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub users: i64,
    pub verified: i64,
    pub with_second_factor: i64,
    pub active_sessions: i64,
    pub clients: i64,
}

const ADD: &str = "insert into activity (hour, kind, label, count) values ($1, $2, $3, $4) \
     on conflict (hour, kind, label) do update set count = activity.count + excluded.count";

impl Store {
    /// Adds counts (from one node) in one transaction.
    pub async fn add_activity(&self, counts: &[ActivityCount]) -> StoreResult<()> {
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            for c in counts {
                sqlx::query(ADD)
                    .bind(c.hour)
                    .bind(&c.kind)
                    .bind(&c.label)
                    .bind(c.count)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// Every count from `since_hour` on.
    pub async fn activity_since(&self, since_hour: i64) -> StoreResult<Vec<ActivityCount>> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, (i64, String, String, i64)>(
                "select hour, kind, label, count from activity where hour >= $1",
            )
            .bind(since_hour)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(hour, kind, label, count)| ActivityCount {
                hour,
                kind,
                label,
                count,
            })
            .collect())
    }

    pub async fn prune_activity(&self, before_hour: i64) -> StoreResult<u64> {
        Ok(super::execute!(
            self,
            "delete from activity where hour < $1",
            before_hour
        )?)
    }

    /// Accounts, confirmed addresses, accounts with a second factor, sessions seen since
    /// `active_since`, and registered clients.
    pub async fn totals(&self, active_since: i64) -> StoreResult<Totals> {
        let (users, verified, with_second_factor, active_sessions, clients) =
            on_pool!(self, |pool| sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
                "select \
                   (select count(*) from users), \
                   (select count(*) from users where email_verified), \
                   (select count(*) from users where email_otp_enabled) \
                   + (select count(*) from totp_factors t join users u on u.id = t.user_id \
                      where t.confirmed_at is not null and not u.email_otp_enabled), \
                   (select count(*) from user_sessions where last_seen_at >= $1), \
                   (select count(*) from oauth_clients)"
            )
            .bind(active_since)
            .fetch_one(pool)
            .await)?;
        Ok(Totals {
            users,
            verified,
            with_second_factor,
            active_sessions,
            clients,
        })
    }

    /// The newest security events, for the overview.
    pub async fn latest_audit_events(&self, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        self.audit_events(&super::AuditFilter::default(), limit)
            .await
    }
}
