//! `[connectors.anthropic]` (the Messages API client) and `[connectors.agents]` (agent runs:
//! their defaults, limits per user, and how they run as jobs).

use crate::platform::config::{Config, http_url};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    /// `<base_url>/v1/messages`; tests point it at a stand-in on 127.0.0.1.
    pub base_url: String,
    /// The `anthropic-version` header.
    pub version: String,
    /// The model a run uses unless it names one.
    pub model: String,
    /// `max_tokens` of each model call.
    pub max_tokens: u32,
    /// Whole-call timeout of one model call (the stream included).
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Longest silence between two chunks of a stream before the call fails (retryable).
    pub idle_timeout_secs: u64,
    /// Retries of one call on 408/409/429/5xx/529 and connection failures (never on other 4xx).
    pub max_retries: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Model calls per run unless the run asks for fewer (or more, up to `max_turns_limit`).
    pub default_max_turns: u32,
    pub max_turns_limit: u32,
    /// Timeout of one tool call; a call past it is an `is_error` result for the model.
    pub tool_timeout_secs: u64,
    /// Runs one user may have queued or running at once; past it a 429.
    pub max_concurrent_runs: u32,
    /// Runs one user may start per rolling hour; past it a 429 with `Retry-After`.
    pub max_runs_per_hour: u32,
    /// Claims of a run's job before the run is failed (a crash or lost lease costs one).
    pub max_attempts: u32,
    /// How often a running run looks for a cancel request (any process may have set it), and
    /// how often a run's event stream looks for new events.
    pub poll_ms: u64,
    /// Largest prompt or system text accepted.
    pub max_prompt_bytes: usize,
    /// Finished runs (with their steps and events) older than this are deleted by the
    /// `events_prune` job.
    pub retention_days: i64,
    /// The page of a run in our web app, `{id}` replaced by the run's id: a Linear agent
    /// session links to its runs with it (`agentSessionUpdate` `externalUrls`). Unset: no link.
    #[serde(default)]
    pub run_page_url: Option<String>,
}

impl Config {
    pub(super) fn validate_agents(&self, problems: &mut Vec<String>, production: bool) {
        let a = &self.connectors.anthropic;
        match http_url(&a.base_url) {
            Err(why) => problems.push(format!("connectors.anthropic.base_url {why}")),
            Ok(u) if production && u.scheme() != "https" => {
                problems.push("connectors.anthropic.base_url must be https in production".into())
            }
            Ok(_) => {}
        }
        if self.connectors.agents.retention_days < 1 {
            problems.push("connectors.agents.retention_days must be at least 1".into());
        }
        if a.version.trim().is_empty() || a.model.trim().is_empty() {
            problems.push("connectors.anthropic.version and model must not be empty".into());
        }
        if !(1..=128_000).contains(&a.max_tokens) {
            problems.push("connectors.anthropic.max_tokens must be between 1 and 128000".into());
        }
        if !(1..=3600).contains(&a.request_timeout_secs)
            || !(1..=60).contains(&a.connect_timeout_secs)
            || !(1..=600).contains(&a.idle_timeout_secs)
        {
            problems.push(
                "connectors.anthropic timeouts: request 1-3600 s, connect 1-60 s, idle 1-600 s"
                    .into(),
            );
        }
        if a.max_retries > 10 {
            problems.push("connectors.anthropic.max_retries must be at most 10".into());
        }
        let g = &self.connectors.agents;
        if g.max_turns_limit == 0 || !(1..=g.max_turns_limit).contains(&g.default_max_turns) {
            problems.push(
                "connectors.agents.default_max_turns must be between 1 and max_turns_limit".into(),
            );
        }
        if !(1..=3600).contains(&g.tool_timeout_secs) {
            problems.push("connectors.agents.tool_timeout_secs must be between 1 and 3600".into());
        }
        if g.max_concurrent_runs == 0 || g.max_runs_per_hour == 0 || g.max_attempts == 0 {
            problems.push(
                "connectors.agents.max_concurrent_runs, max_runs_per_hour and max_attempts must be at least 1"
                    .into(),
            );
        }
        if !(10..=10_000).contains(&g.poll_ms) {
            problems.push("connectors.agents.poll_ms must be between 10 and 10000".into());
        }
        if let Some(page) = &g.run_page_url {
            if !page.contains("{id}") {
                problems.push("connectors.agents.run_page_url must contain {id}".into());
            } else if let Err(why) = http_url(&page.replace("{id}", "run")) {
                problems.push(format!("connectors.agents.run_page_url {why}"));
            }
        }
        if !(1..=10 * 1024 * 1024).contains(&g.max_prompt_bytes) {
            problems.push("connectors.agents.max_prompt_bytes must be between 1 and 10 MiB".into());
        }
    }
}
