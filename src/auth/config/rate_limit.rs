//! `[auth.rate_limit]`: Better Auth's rate limits, enforced by `auth::rate_limit`.

use crate::platform::config::AppEnv;
use serde::Deserialize;

/// `[auth.rate_limit]`: Better Auth's rate limits (spec §7), enforced by `auth::rate_limit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `None` follows Better Auth: on exactly when `APP_ENV=production`.
    pub enabled: Option<bool>,
    /// The general rule for every path no special or custom rule covers.
    pub window_secs: u64,
    pub max: u32,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    pub trusted_proxies: Vec<String>,
    /// Most buckets kept in memory; past it the least recently used are dropped.
    pub max_entries: usize,
    /// Where counts live: this process's memory, or PostgreSQL (shared by every auth process).
    #[serde(default)]
    pub storage: RateLimitStorage,
    /// Per-path overrides, checked before the built-in rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RateLimitRuleConfig>,
}

/// `auth.rate_limit.storage`: Better Auth's `"memory"` (the default; per process) or
/// `"database"` (its `rateLimit` table; exact across every process on the database).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStorage {
    #[default]
    Memory,
    Database,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRuleConfig {
    /// The path after `/api/auth`; a trailing `*` matches any path with that prefix.
    pub path: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Unset: the general `window_secs` / `max`.
    pub window_secs: Option<u64>,
    pub max: Option<u32>,
}

fn default_true() -> bool {
    true
}

impl RateLimitConfig {
    /// Whether limits apply under `app_env`; an explicit `enabled` wins.
    pub fn enabled_in(&self, app_env: AppEnv) -> bool {
        self.enabled.unwrap_or(app_env == AppEnv::Production)
    }

    /// `trusted_proxies` as networks; a bare address is a network of one.
    pub fn proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, Vec<String>> {
        let mut nets = Vec::new();
        let mut problems = Vec::new();
        for entry in &self.trusted_proxies {
            let entry = entry.trim();
            match entry.parse::<ipnet::IpNet>() {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => match entry.parse::<std::net::IpAddr>() {
                    Ok(ip) => nets.push(ip.into()),
                    Err(_) => problems.push(format!(
                        "auth.rate_limit.trusted_proxies entry {entry:?} is not an IP address or CIDR"
                    )),
                },
            }
        }
        if problems.is_empty() {
            Ok(nets)
        } else {
            Err(problems)
        }
    }

    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if let Err(bad) = self.proxy_nets() {
            problems.extend(bad);
        }
        if self.window_secs == 0 || self.max == 0 {
            problems.push("auth.rate_limit.window_secs and max must be at least 1".to_owned());
        }
        if self.max_entries == 0 {
            problems.push("auth.rate_limit.max_entries must be at least 1".to_owned());
        }
        for rule in &self.rules {
            if !rule.path.starts_with('/') {
                problems.push(format!(
                    "auth.rate_limit.rules path {:?} must start with / (the path after /api/auth)",
                    rule.path
                ));
            }
            if rule.window_secs == Some(0) || rule.max == Some(0) {
                problems.push(format!(
                    "auth.rate_limit.rules {:?}: window_secs and max must be at least 1 (use enabled = false to turn a path off)",
                    rule.path
                ));
            }
        }
    }
}
