//! `[webhooks]`: provider webhook secrets, the body cap, event retention and the intake
//! writers. A top-level section for its key names, but only the connectors role reads it.

use crate::platform::config::is_dev_secret;
use crate::platform::secret::Secret;
use serde::Deserialize;

/// `[webhooks]`: verifying provider deliveries and keeping their events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The Linear webhook signing secret; unset: every Linear delivery is refused (401).
    pub linear_secret: Option<Secret>,
    /// More secrets accepted during a rotation (old and new both verify).
    pub linear_previous_secrets: Vec<Secret>,
    pub github_secret: Option<Secret>,
    pub github_previous_secrets: Vec<Secret>,
    /// Largest delivery body accepted; larger gets 413 and nothing is stored.
    pub body_limit_bytes: usize,
    /// A delivery whose `webhookTimestamp` is further than this from now is refused.
    pub timestamp_tolerance_secs: i64,
    /// Events older than this are pruned.
    pub event_retention_days: i64,
    /// Mean pause between prune jobs.
    pub prune_interval_secs: u64,
    /// How often each process looks for new events to push to its SSE streams.
    pub stream_poll_ms: u64,
    /// A comment line on idle SSE streams, so proxies keep them open.
    pub stream_keepalive_secs: u64,
    /// Intake writer threads (each with its own connection) that store verified deliveries in
    /// batches, one statement and one commit per batch (1-64).
    pub intake_writers: usize,
    /// Most deliveries one intake batch holds.
    pub intake_batch_max: usize,
    /// Most payload bytes one intake batch holds (a larger delivery is written alone).
    pub intake_batch_max_bytes: usize,
}

impl WebhooksConfig {
    /// Every secret a Linear signature may be made with, the current one first.
    pub fn linear_secrets(&self) -> Vec<&Secret> {
        self.linear_secret
            .iter()
            .chain(self.linear_previous_secrets.iter())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn github_secrets(&self) -> Vec<&Secret> {
        self.github_secret
            .iter()
            .chain(self.github_previous_secrets.iter())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub(crate) fn validate(&self, problems: &mut Vec<String>, production: bool) {
        if self.body_limit_bytes < 1024 {
            problems.push("webhooks.body_limit_bytes must be at least 1024".to_owned());
        }
        if self.timestamp_tolerance_secs < 1 {
            problems.push("webhooks.timestamp_tolerance_secs must be at least 1".to_owned());
        }
        if self.event_retention_days < 1 {
            problems.push("webhooks.event_retention_days must be at least 1".to_owned());
        }
        if self.stream_poll_ms == 0
            || self.prune_interval_secs == 0
            || self.stream_keepalive_secs == 0
        {
            problems.push(
                "webhooks.stream_poll_ms, prune_interval_secs and stream_keepalive_secs must be positive"
                    .to_owned(),
            );
        }
        if !(1..=64).contains(&self.intake_writers)
            || self.intake_batch_max == 0
            || self.intake_batch_max > 10_000
        {
            problems.push(
                "webhooks.intake_writers must be 1-64 and webhooks.intake_batch_max 1-10000"
                    .to_owned(),
            );
        }
        if production {
            for secret in self
                .linear_secrets()
                .into_iter()
                .chain(self.github_secrets())
            {
                if is_dev_secret(secret) {
                    problems.push(
                        "webhook secrets must not be development secrets in production".to_owned(),
                    );
                    break;
                }
            }
        }
    }
}
