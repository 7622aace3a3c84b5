//! The PostgreSQL job queue any role may use: [`enqueue`] inside the caller's transaction,
//! workers that claim with `FOR UPDATE SKIP LOCKED` under a lease, retries, dead jobs.
//!
//! Built here rather than taken from a crate: crates.io's `crates_io_worker` (the model read
//! first) is unpublished, runs on `diesel-async`, and holds a row lock and a transaction open
//! for a job's whole run; we need sync diesel on r2d2, leases decided by the injected clock
//! (so a crashed worker's job is re-claimed, and tests need no sleeps), per-kind concurrency
//! and a dead state. The shape follows it: one table, claim by `SKIP LOCKED`, priority order,
//! deduplicated enqueue.
//!
//! Life of a job: `queued` → claimed (`running`, `attempts + 1`, `lease_until = now + lease`,
//! `locked_by = worker`) → deleted on success, or back to `queued` with exponential backoff and
//! jitter, or `dead` (with `last_error`) once `attempts` reaches `max_attempts`. A claim whose
//! lease ran out (the worker died) is queued again by the next worker that looks. Every write a
//! worker makes after claiming is fenced on `(locked_by, attempts)`, so a worker that lost its
//! claim can neither finish nor fail the job someone else now holds; a handler that does all its
//! work in one transaction calls [`Job::finish_in`] inside it and so commits its effect and the
//! job's end together: exactly once.

pub mod admin;
pub mod metrics;
pub mod store;
mod worker;

pub use store::{EnqueueOpts, enqueue};
pub use worker::{Runner, RunnerHandle, Supervisor};

use crate::db::{DbError, DbPool};
use crate::platform::config::{DatabaseConfig, JobsConfig};
use diesel::PgConnection;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// A claimed job as its handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// 1 on the first run.
    pub attempt: i32,
    pub max_attempts: i32,
    /// The claim's owner: with `attempt`, what fences every later write.
    pub worker: String,
}

impl Job {
    /// Ends the job inside the handler's own transaction: true when this claim still held it
    /// (commit), false when another worker took it over (roll back, the other run owns it).
    pub fn finish_in(&self, conn: &mut PgConnection) -> Result<bool, DbError> {
        store::complete(conn, self)
    }
}

/// Why a run failed. `retry` ones come back with backoff until `max_attempts`; `permanent`
/// ones (a payload that can never work) are dead at once.
#[derive(Debug, Clone)]
pub struct JobError {
    pub message: String,
    pub permanent: bool,
}

impl JobError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<diesel::result::Error> for JobError {
    fn from(err: diesel::result::Error) -> Self {
        Self::retry(DbError::from(err).to_string())
    }
}

impl From<DbError> for JobError {
    fn from(err: DbError) -> Self {
        Self::retry(err.to_string())
    }
}

pub type Handler = Arc<dyn Fn(Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Job kinds → handlers, as a role registers them.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Handler>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register<F, Fut>(&mut self, kind: &str, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            kind.to_owned(),
            Arc::new(move |job| {
                let handler = handler.clone();
                Box::pin(async move { handler(job).await })
            }),
        );
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<_> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    pub fn handler(&self, kind: &str) -> Option<Handler> {
        self.handlers.get(kind).cloned()
    }
}

/// A worker id unique to this runner: host-free, random, short.
pub(crate) fn worker_id() -> String {
    format!("w_{}", crate::crypto::random::id())
}

/// `base · 2^(attempt-1)`, capped, ±20 % from the OS random source.
pub(crate) fn backoff(
    attempt: i32,
    base: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    use ring::rand::{SecureRandom, SystemRandom};
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let mut byte = [0u8; 1];
    let r = if SystemRandom::new().fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        0.5
    };
    raw.mul_f64(0.8 + 0.4 * r)
}

/// The pool a process's workers use: their own (`jobs.pool_max_size` connections, built
/// without connecting) so a draining queue and HTTP requests never queue behind each other for
/// one pool's permits, or `shared` when that is 0.
pub fn worker_pool(shared: &DbPool, database: &DatabaseConfig, jobs: &JobsConfig) -> DbPool {
    if jobs.pool_max_size == 0 {
        return shared.clone();
    }
    crate::db::build_pool(&DatabaseConfig {
        pool_max_size: jobs.pool_max_size,
        ..database.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        for attempt in 1..=3 {
            let expect = 2f64.powi(attempt - 1);
            let got = backoff(attempt, base, max).as_secs_f64();
            assert!(
                got >= expect * 0.79 && got <= expect * 1.21,
                "{attempt}: {got}"
            );
        }
        assert!(backoff(40, base, max) <= Duration::from_secs(12));
    }
}
