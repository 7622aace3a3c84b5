//! `[connectors.mcp]`: the MCP client's limits, the SSRF guard's allowances and what a tool
//! call record keeps.

use crate::platform::config::{Config, http_url};
use crate::platform::secret::Secret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Whole-request timeout of one MCP call (connect, send, read the full response).
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Largest MCP response body read; a larger one fails the call (never buffered whole).
    pub max_result_bytes: usize,
    /// How long a `tools/list` result is reused when the server gives no `ttlMs`.
    pub list_ttl_secs: u64,
    /// Most `tools/list` pages followed for one listing.
    pub max_pages: u32,
    /// SSRF guard: reach 127.0.0.0/8 and ::1 (tests and local development only).
    pub allow_loopback: bool,
    /// SSRF guard: reach RFC 1918, CGNAT and fc00::/7 addresses.
    pub allow_private: bool,
    /// Keep tool-call arguments and results in `mcp_tool_calls` (they may hold private data).
    pub record_payloads: bool,
    /// Most servers one user may add.
    pub max_servers_per_user: u32,
    /// How long (ms) a process reuses a server's row and unsealed credential for tool calls
    /// without reading them again; 0 reads them on every call. Changes made through this
    /// process are seen at once; another process sees a deleted server for at most this long.
    pub reach_cache_ttl_ms: u64,
    /// Most servers kept in that cache (past it, the cache starts over).
    pub reach_cache_max_entries: usize,
    /// Tool-call records waiting for the background writer; when it is full the call records
    /// its row itself (one database round trip) rather than drop it.
    pub record_queue_capacity: usize,
    /// Clients registered by hand at MCP authorization servers, one per issuer: used before a
    /// Client ID Metadata Document or dynamic registration (spec §5.5).
    #[serde(default)]
    pub clients: Vec<McpClientRegistration>,
}

/// `[[connectors.mcp.clients]]`: our client at one authorization server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpClientRegistration {
    /// The authorization server's `issuer`, exactly as its metadata spells it.
    pub issuer: String,
    pub client_id: String,
    /// Absent for a public client.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// How the secret goes to the token endpoint: `client_secret_basic` (the default with a
    /// secret: every authorization server must take it, RFC 6749 §2.3.1) or
    /// `client_secret_post`; `none` without a secret. The same for every request of the client.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
}

impl Config {
    pub(super) fn validate_mcp(&self, problems: &mut Vec<String>, production: bool) {
        let m = &self.connectors.mcp;
        if !(1..=600).contains(&m.request_timeout_secs) {
            problems.push("connectors.mcp.request_timeout_secs must be between 1 and 600".into());
        }
        if !(1..=60).contains(&m.connect_timeout_secs) {
            problems.push("connectors.mcp.connect_timeout_secs must be between 1 and 60".into());
        }
        if !(1024..=64 * 1024 * 1024).contains(&m.max_result_bytes) {
            problems
                .push("connectors.mcp.max_result_bytes must be between 1 KiB and 64 MiB".into());
        }
        if !(1..=1000).contains(&m.max_pages) {
            problems.push("connectors.mcp.max_pages must be between 1 and 1000".into());
        }
        if m.reach_cache_ttl_ms > 600_000 {
            problems.push("connectors.mcp.reach_cache_ttl_ms must be at most 600000".into());
        }
        if m.reach_cache_max_entries == 0 || m.record_queue_capacity == 0 {
            problems.push(
                "connectors.mcp.reach_cache_max_entries and record_queue_capacity must be at least 1"
                    .into(),
            );
        }
        if m.max_servers_per_user == 0 {
            problems.push("connectors.mcp.max_servers_per_user must be at least 1".into());
        }
        if production && (m.allow_loopback || m.allow_private) {
            problems.push(
                "connectors.mcp.allow_loopback and allow_private must be false in production"
                    .into(),
            );
        }
        for (i, c) in m.clients.iter().enumerate() {
            if let Err(why) = http_url(&c.issuer) {
                problems.push(format!("connectors.mcp.clients[{i}].issuer {why}"));
            }
            if c.client_id.trim().is_empty() {
                problems.push(format!(
                    "connectors.mcp.clients[{i}].client_id must not be empty"
                ));
            }
            let secret = c
                .client_secret
                .as_ref()
                .is_some_and(|s| !s.expose().is_empty());
            match (c.token_endpoint_auth_method.as_deref(), secret) {
                (None, _)
                | (Some("client_secret_basic" | "client_secret_post"), true)
                | (Some("none"), false) => {}
                (Some(other), _) => problems.push(format!(
                    "connectors.mcp.clients[{i}].token_endpoint_auth_method {other:?} does not fit: \
                     client_secret_basic or client_secret_post with a client_secret, none without"
                )),
            }
        }
        let p = &self.connectors.providers;
        for (name, url) in [("linear", &p.linear.mcp_url), ("github", &p.github.mcp_url)] {
            let Some(url) = url.as_deref() else { continue };
            match http_url(url) {
                Err(why) => problems.push(format!("connectors.providers.{name}.mcp_url {why}")),
                Ok(u) if production && u.scheme() != "https" => problems.push(format!(
                    "connectors.providers.{name}.mcp_url must be https in production"
                )),
                Ok(_) => {}
            }
        }
    }
}
