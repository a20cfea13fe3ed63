//! The admin's list of users: keyset pages by email, with a prefix search on both indexes.

use super::users::{UserRow, user_columns};
use super::{Db, Store, StoreResult, User, on_pool};

impl Store {
    /// One page of the admin's user list, ordered by email: the users after `after` (an
    /// email_lower, for keyset pagination), only those whose email or name starts with `prefix`
    /// when one is given. Both filters use indexes, so pages stay fast with many users.
    pub async fn list_users(
        &self,
        prefix: Option<&str>,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        let rows = match prefix
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
        {
            None => {
                let sql = concat!(
                    "select ",
                    user_columns!(),
                    " from users where email_lower > $1 order by email_lower limit $2"
                );
                on_pool!(self, |pool| {
                    sqlx::query_as::<_, UserRow>(sql)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await
                })?
            }
            // SQLite compares text bytewise: a prefix is a range up to the prefix followed by the
            // highest code point. Postgres uses `like` on text_pattern_ops indexes.
            Some(prefix) => match &self.db {
                Db::Sqlite(pool) => {
                    // Two range scans, each on its own index and cut at one page, merged:
                    // an `or` would make SQLite walk the whole email index instead.
                    let sql = concat!(
                        "select * from (select ",
                        user_columns!(),
                        ", email_lower from users \
                         where email_lower >= $1 and email_lower < $2 and email_lower > $3 \
                         order by email_lower limit $4) \
                         union \
                         select * from (select ",
                        user_columns!(),
                        ", email_lower from users \
                         where lower(display_name) >= $1 and lower(display_name) < $2 \
                         and email_lower > $3 order by email_lower limit $4) \
                         order by email_lower limit $4"
                    );
                    sqlx::query_as::<_, UserRow>(sql)
                        .bind(&prefix)
                        .bind(format!("{prefix}\u{10FFFF}"))
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
                Db::Postgres(pool) => {
                    let sql = concat!(
                        "select ",
                        user_columns!(),
                        " from users where (email_lower like $1 or lower(display_name) like $1) \
                         and email_lower > $2 order by email_lower limit $3"
                    );
                    sqlx::query_as::<_, UserRow>(sql)
                        .bind(format!("{}%", escape_like(&prefix)))
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
            },
        };
        Ok(rows.into_iter().map(UserRow::into_user).collect())
    }
}

/// Makes `%`, `_` and the backslash (Postgres' default `like` escape) match literally.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
