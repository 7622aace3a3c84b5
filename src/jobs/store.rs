//! Every query on the `jobs` table. Each takes `&mut PgConnection`, so [`enqueue`] composes
//! inside the caller's transaction; the claim is one statement (`FOR UPDATE SKIP LOCKED`).

use crate::db::DbError;
use crate::jobs::Job;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use serde::Serialize;

/// Options of one enqueue; the default is "now, priority 0, no dedupe, the configured attempts".
#[derive(Debug, Clone, Default)]
pub struct EnqueueOpts {
    /// At most one queued or running job per (kind, key): a second enqueue is dropped.
    pub dedupe_key: Option<String>,
    /// Higher runs first within a kind.
    pub priority: i32,
    /// Not before this; `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    /// `None` = 5 (`jobs.max_attempts` applies to jobs enqueued through a role's helpers).
    pub max_attempts: Option<i32>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Adds a job inside the caller's transaction (it commits or rolls back with it). Returns its
/// id, or `None` when a job with the same dedupe key is already queued or running.
pub fn enqueue(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    kind: &str,
    payload: &serde_json::Value,
    opts: &EnqueueOpts,
) -> Result<Option<i64>, DbError> {
    if opts.dedupe_key.is_none() {
        // The common case as a diesel insert: a cached prepared statement (webhook intake).
        use crate::db::schema::jobs::dsl as j;
        let id = diesel::insert_into(j::jobs)
            .values((
                j::kind.eq(kind),
                j::payload.eq(payload),
                j::priority.eq(opts.priority),
                j::max_attempts.eq(opts.max_attempts.unwrap_or(5).max(1)),
                j::run_at.eq(opts.run_at.unwrap_or(now)),
                j::created_at.eq(now),
                j::updated_at.eq(now),
            ))
            .returning(j::id)
            .get_result::<i64>(conn)?;
        return Ok(Some(id));
    }
    let row = crate::db::prepared(
        "INSERT INTO jobs (kind, payload, priority, max_attempts, run_at, dedupe_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (kind, dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running') \
         DO NOTHING RETURNING id",
    )
    .bind::<Text, _>(kind)
    .bind::<Jsonb, _>(payload)
    .bind::<Integer, _>(opts.priority)
    .bind::<Integer, _>(opts.max_attempts.unwrap_or(5).max(1))
    .bind::<Timestamptz, _>(opts.run_at.unwrap_or(now))
    .bind::<Nullable<Text>, _>(opts.dedupe_key.as_deref())
    .bind::<Timestamptz, _>(now)
    .get_result::<IdRow>(conn)
    .optional()?;
    Ok(row.map(|r| r.id))
}

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
}

/// Claims up to `limit` ready jobs of `kind` for `worker` until `lease_until`.
pub fn claim(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    kind: &str,
    limit: i64,
    worker: &str,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Job>, DbError> {
    claim_kinds(conn, now, &[(kind, limit)], worker, lease_until)
}

/// Claims ready jobs for `worker` until `lease_until`, up to a limit per kind, in one statement
/// (a worker looking for work in every kind it runs makes one round trip, not one per kind).
/// Two workers never get the same row: each kind's select skips rows another claim has locked.
/// Returns the jobs in id order.
pub fn claim_kinds(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    wanted: &[(&str, i64)],
    worker: &str,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Job>, DbError> {
    let kinds: Vec<&str> = wanted.iter().map(|(k, _)| *k).collect();
    let limits: Vec<i64> = wanted.iter().map(|(_, n)| *n).collect();
    let rows = crate::db::prepared(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $4, \
             locked_by = $5, updated_at = $1 \
         WHERE id IN (SELECT j.id FROM unnest($2::text[], $3::bigint[]) AS k(kind, n) \
             CROSS JOIN LATERAL (SELECT id FROM jobs WHERE state = 'queued' AND kind = k.kind \
                 AND run_at <= $1 ORDER BY priority DESC, run_at, id LIMIT k.n \
                 FOR UPDATE SKIP LOCKED) j) \
         RETURNING id, kind, payload, attempts, max_attempts",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Text>, _>(&kinds)
    .bind::<Array<BigInt>, _>(&limits)
    .bind::<Timestamptz, _>(lease_until)
    .bind::<Text, _>(worker)
    .load::<ClaimRow>(conn)?;
    let mut jobs: Vec<Job> = rows
        .into_iter()
        .map(|r| Job {
            id: r.id,
            kind: r.kind,
            payload: r.payload,
            attempt: r.attempts,
            max_attempts: r.max_attempts,
            worker: worker.to_owned(),
        })
        .collect();
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// Claims whose lease ran out (their worker died or hung) go back to the queue, or to `dead`
/// when they have used their attempts. Returns how many.
pub fn reap_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(crate::db::prepared(
        "UPDATE jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
             last_error = 'lease expired (the worker stopped without finishing)', \
             lease_until = NULL, locked_by = NULL, run_at = $1, updated_at = $1 \
         WHERE state = 'running' AND lease_until < $1",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)?)
}

/// The job is done: deleted, if this claim still holds it.
pub fn complete(conn: &mut PgConnection, job: &Job) -> Result<bool, DbError> {
    let n = crate::db::prepared(
        "DELETE FROM jobs WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempts = $3",
    )
    .bind::<BigInt, _>(job.id)
    .bind::<Text, _>(&job.worker)
    .bind::<Integer, _>(job.attempt)
    .execute(conn)?;
    Ok(n == 1)
}

/// Many finished jobs in one statement (one commit), each only if its claim still holds it.
pub fn complete_many(conn: &mut PgConnection, jobs: &[Job]) -> Result<usize, DbError> {
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let workers: Vec<&str> = jobs.iter().map(|j| j.worker.as_str()).collect();
    let attempts: Vec<i32> = jobs.iter().map(|j| j.attempt).collect();
    Ok(crate::db::prepared(
        "DELETE FROM jobs WHERE state = 'running' AND (id, locked_by, attempts) IN \
         (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[]))",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Text>, _>(&workers)
    .bind::<Array<Integer>, _>(&attempts)
    .execute(conn)?)
}

/// A failed run: queued again at `retry_at`, or dead (`dead = true` or no attempts left).
pub fn fail(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    job: &Job,
    error: &str,
    retry_at: DateTime<Utc>,
    dead: bool,
) -> Result<bool, DbError> {
    let n = crate::db::prepared(
        "UPDATE jobs SET \
             state = CASE WHEN $4 OR attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
             last_error = $5, run_at = $6, lease_until = NULL, locked_by = NULL, updated_at = $7 \
         WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempts = $3",
    )
    .bind::<BigInt, _>(job.id)
    .bind::<Text, _>(&job.worker)
    .bind::<Integer, _>(job.attempt)
    .bind::<diesel::sql_types::Bool, _>(dead)
    .bind::<Text, _>(truncate(error, 2000))
    .bind::<Timestamptz, _>(retry_at)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(n == 1)
}

/// Renews a running claim; false when it was lost.
pub fn extend(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    job: &Job,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = crate::db::prepared(
        "UPDATE jobs SET lease_until = $4, updated_at = $5 \
         WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempts = $3",
    )
    .bind::<BigInt, _>(job.id)
    .bind::<Text, _>(&job.worker)
    .bind::<Integer, _>(job.attempt)
    .bind::<Timestamptz, _>(lease_until)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(n == 1)
}

/// Shutdown: every claim `worker` still holds goes back to the queue, the attempt not counted.
pub fn release(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    worker: &str,
) -> Result<usize, DbError> {
    Ok(crate::db::prepared(
        "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), lease_until = NULL, \
             locked_by = NULL, run_at = $1, updated_at = $1 \
         WHERE state = 'running' AND locked_by = $2",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(worker)
    .execute(conn)?)
}

/// A job as operators see it.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct JobRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Integer)]
    pub priority: i32,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub run_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub lease_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub dedupe_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// Jobs in the given states (all when empty), oldest first.
pub fn list(
    conn: &mut PgConnection,
    states: &[String],
    limit: i64,
) -> Result<Vec<JobRow>, DbError> {
    Ok(crate::db::prepared(
        "SELECT id, kind, state, priority, attempts, max_attempts, run_at, lease_until, dedupe_key, \
             last_error, created_at \
         FROM jobs WHERE cardinality($1::text[]) = 0 OR state = ANY($1) ORDER BY id LIMIT $2",
    )
    .bind::<Array<Text>, _>(states)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// Queues a dead (or queued) job again now, with fresh attempts. Returns whether it existed.
pub fn retry(conn: &mut PgConnection, now: DateTime<Utc>, id: i64) -> Result<bool, DbError> {
    let n = crate::db::prepared(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2, lease_until = NULL, \
             locked_by = NULL, updated_at = $2 WHERE id = $1 AND state <> 'running'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(n == 1)
}

/// Every dead job queued again now. Returns how many.
pub fn retry_dead(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(crate::db::prepared(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, lease_until = NULL, \
             locked_by = NULL, updated_at = $1 WHERE state = 'dead'",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)?)
}

/// Per kind and state: how many, and the oldest `created_at` (what the metrics show).
#[derive(Debug, Clone, QueryableByName)]
pub struct StatRow {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Timestamptz)]
    pub oldest: DateTime<Utc>,
}

pub fn stats(conn: &mut PgConnection) -> Result<Vec<StatRow>, DbError> {
    Ok(crate::db::prepared(
        "SELECT kind, state, count(*) AS count, min(created_at) AS oldest FROM jobs \
         GROUP BY kind, state ORDER BY kind, state",
    )
    .load(conn)?)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
