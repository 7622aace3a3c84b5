//! `[jobs]`: the PostgreSQL job queue's workers in this process, and their checks. The queue is
//! shared by both roles, so its section stays with `platform`.

use super::*;

/// `[jobs]`: whether this process runs workers, how many per kind, leases and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Run workers in this process for the job kinds of the roles it serves.
    pub enabled: bool,
    /// Pause between claims while the queue is empty (a local enqueue wakes workers at once).
    pub poll_interval_ms: u64,
    /// A claim is a worker's for this long; it is renewed while the job runs.
    pub lease_secs: u64,
    /// Claims before a failing job is `dead`.
    pub max_attempts: i32,
    /// First retry after this, doubling per attempt, jittered ±20 %.
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
    /// Jobs of one kind running at once in this process unless `concurrency` names the kind.
    pub default_concurrency: usize,
    /// Per kind, e.g. `{ webhook_route = 8 }`; 0 turns the kind off in this process.
    pub concurrency: HashMap<String, usize>,
    /// On shutdown, running jobs may finish within this; the rest are released to others.
    pub shutdown_grace_secs: u64,
    /// Connections of the workers' own pool (claims, completions and the handlers of the
    /// connectors role's kinds), so draining a queue never waits in line with HTTP requests
    /// for the request pool; 0 = share the request pool.
    #[serde(default)]
    pub pool_max_size: u32,
}

impl JobsConfig {
    pub fn concurrency_of(&self, kind: &str) -> usize {
        self.concurrency
            .get(kind)
            .copied()
            .unwrap_or(self.default_concurrency)
    }

    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.poll_interval_ms == 0 {
            problems.push("jobs.poll_interval_ms must be at least 1".to_owned());
        }
        if self.lease_secs < 2 {
            problems.push("jobs.lease_secs must be at least 2".to_owned());
        }
        if self.max_attempts < 1 {
            problems.push("jobs.max_attempts must be at least 1".to_owned());
        }
        if self.backoff_base_ms == 0 || self.backoff_max_secs == 0 {
            problems
                .push("jobs.backoff_base_ms and jobs.backoff_max_secs must be positive".to_owned());
        }
    }
}
