//! Better Auth's `rateLimit` table in PostgreSQL, where every auth process counts together.

use super::{Decision, Hit, PRUNE_EVERY, RateLimitStore, Rule};
use crate::db::{DbError, DbPool};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Better Auth's database storage, made exact: the whole decision is one statement. A new key
/// inserts count 1; on conflict the row is locked and, only when the window has passed or the
/// count is under `max`, reset or counted (a refusal writes nothing). The `WITH` query returns
/// `allowed` with the new `last_request`, or, when the update was skipped, the row as it stood.
const HIT_SQL: &str = "\
WITH hit AS (
    INSERT INTO rate_limit AS r (id, key, count, last_request) VALUES ($1, $2, 1, $3)
    ON CONFLICT (key) DO UPDATE
       SET count = CASE WHEN $3 - r.last_request >= $4 THEN 1 ELSE r.count + 1 END,
           last_request = $3
     WHERE $3 - r.last_request >= $4 OR r.count < $5
    RETURNING r.last_request
)
SELECT true AS allowed, last_request FROM hit
UNION ALL
SELECT false, last_request FROM rate_limit WHERE key = $2 AND NOT EXISTS (SELECT 1 FROM hit)";

/// Rows whose window has passed count as absent, so deleting them changes no decision.
const PRUNE_SQL: &str = "\
DELETE FROM rate_limit WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rate_limit WHERE last_request < $1 LIMIT 10000))";

#[derive(diesel::QueryableByName)]
struct HitRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    allowed: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_request: i64,
}

/// The `rate_limit` table, shared by every auth process on the database.
pub struct DatabaseStore {
    pool: DbPool,
    /// The longest window of any rule: rows idle for longer are pruned.
    horizon_ms: i64,
    hits: AtomicU32,
    warned: AtomicBool,
}

impl DatabaseStore {
    pub fn new(pool: DbPool, horizon_ms: i64) -> Self {
        Self {
            pool,
            horizon_ms,
            hits: AtomicU32::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// The decision for one request, on a pooled connection (blocking).
    pub fn check(
        conn: &mut diesel::PgConnection,
        key: &str,
        rule: Rule,
        now_ms: i64,
    ) -> Result<Decision, DbError> {
        use diesel::RunQueryDsl;
        use diesel::sql_types::{BigInt, Integer, Text};
        let max = i32::try_from(rule.max).unwrap_or(i32::MAX);
        let rows: Vec<HitRow> = crate::db::prepared(HIT_SQL)
            .bind::<Text, _>(crate::crypto::random::id())
            .bind::<Text, _>(key)
            .bind::<BigInt, _>(now_ms)
            .bind::<BigInt, _>(rule.window_ms)
            .bind::<Integer, _>(max)
            .load(conn)?;
        Ok(match rows.first() {
            Some(row) if row.allowed => Decision::Allowed,
            Some(row) => Decision::Limited {
                retry_after_secs: retry_after(row.last_request, rule, now_ms),
            },
            // Refused, but the row was written by a transaction newer than this statement's
            // snapshot: it was allowed just now, so the whole window is left.
            None => Decision::Limited {
                retry_after_secs: retry_after(now_ms, rule, now_ms),
            },
        })
    }

    /// Deletes up to 10,000 rows idle for longer than every window.
    pub fn prune(conn: &mut diesel::PgConnection, before_ms: i64) -> Result<usize, DbError> {
        use diesel::RunQueryDsl;
        Ok(crate::db::prepared(PRUNE_SQL)
            .bind::<diesel::sql_types::BigInt, _>(before_ms)
            .execute(conn)?)
    }
}

/// Seconds until `last_ms + window`, rounded up (Better Auth's `X-Retry-After`).
fn retry_after(last_ms: i64, rule: Rule, now_ms: i64) -> i64 {
    last_ms
        .saturating_add(rule.window_ms)
        .saturating_sub(now_ms)
        .saturating_add(999)
        / 1000
}

impl RateLimitStore for DatabaseStore {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule, now_ms: i64) -> Hit<'a> {
        let key = key.to_owned();
        let prune = self
            .hits
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .is_multiple_of(PRUNE_EVERY);
        let before_ms = now_ms.saturating_sub(self.horizon_ms);
        Box::pin(async move {
            let decided = crate::db::run(&self.pool, move |conn| {
                let decision = Self::check(conn, &key, rule, now_ms)?;
                if prune && let Err(e) = Self::prune(conn, before_ms) {
                    tracing::warn!(error = %e, "rate limit: pruning the rate_limit table failed");
                }
                Ok::<_, DbError>(decision)
            })
            .await;
            match decided {
                Ok(decision) => {
                    self.warned.store(false, Ordering::Relaxed);
                    decision
                }
                // Better Auth's database storage lets a request through when it cannot count it:
                // a database outage already fails every route that needs the database.
                Err(e) => {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "rate limit: the database store failed; letting requests through");
                    }
                    Decision::Allowed
                }
            }
        })
    }
}
