//! The dual-era MCP client (spec §5.1–5.4). Per server it detects the era — a modern
//! (2026-07-28) request first, legacy `initialize` when the answer is not a modern one — caches
//! it, and re-detects once when the cached assumption stops holding (a legacy session that
//! expired is re-initialized once). On top: `tools/list` with pagination and a TTL, and
//! `tools/call` with arguments validated against the tool's `inputSchema` before sending.

use super::error::McpError;
use super::schema;
use super::transport::{self, Limits, Reply, header_safe};
use crate::connectors::config::McpConfig;
use crate::connectors::vault::Plain;
use crate::platform::clock::SharedClock;
use crate::platform::ssrf;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;
use utoipa::ToSchema;

pub const MODERN_VERSION: &str = "2026-07-28";
/// Legacy revisions we accept from `initialize`, newest first; we ask for the first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
const MODERN_ERRORS: [i64; 3] = [-32020, -32021, -32022];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    /// 2026-07-28: stateless, `Mcp-Method`/`Mcp-Name` headers, `resultType`.
    Modern,
    /// 2025-03-26 … 2025-11-25: `initialize`, `Mcp-Session-Id`.
    Legacy,
}

impl Era {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modern => "modern",
            Self::Legacy => "legacy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "modern" => Some(Self::Modern),
            "legacy" => Some(Self::Legacy),
            _ => None,
        }
    }
}

/// What we know of one server, cached per key.
#[derive(Debug, Clone)]
pub struct Known {
    pub era: Era,
    pub version: String,
    session: Option<String>,
    pub server_info: Option<Value>,
}

/// Where one request goes: a cache key (a server row id, or the URL for the CLI), the endpoint,
/// and the bearer token, if any.
pub struct Target<'a> {
    pub key: &'a str,
    pub url: &'a Url,
    pub bearer: Option<&'a Plain>,
}

/// The outcome of probing a server.
#[derive(Debug, Clone)]
pub struct Probe {
    pub known: Option<Known>,
    pub needs_authorization: bool,
}

/// A server's tools as last listed.
#[derive(Debug)]
pub struct ToolList {
    pub tools: Vec<Value>,
    pub expires_at: DateTime<Utc>,
}

impl ToolList {
    pub fn find(&self, name: &str) -> Option<&Value> {
        self.tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
    }
}

pub struct McpClient {
    http: reqwest::Client,
    limits: Limits,
    list_ttl: Duration,
    max_pages: u32,
    clock: SharedClock,
    known: Mutex<HashMap<String, Known>>,
    tools: Mutex<HashMap<String, Arc<ToolList>>>,
    /// Server rows and unsealed credentials for the call path (`connectors.mcp.reach_cache_*`).
    reach: super::reach::ReachCache,
    next_id: AtomicU64,
}

enum Outcome {
    Done(Value),
    /// The cached era (or legacy session) no longer holds: detect again, once.
    Stale,
}

impl McpClient {
    pub fn new(
        config: &McpConfig,
        policy: ssrf::Policy,
        clock: SharedClock,
    ) -> reqwest::Result<Self> {
        Ok(Self {
            http: ssrf::client(policy, Duration::from_secs(config.connect_timeout_secs))?,
            limits: Limits {
                timeout: Duration::from_secs(config.request_timeout_secs),
                max_bytes: config.max_result_bytes,
            },
            list_ttl: Duration::from_secs(config.list_ttl_secs),
            max_pages: config.max_pages,
            clock,
            known: Mutex::new(HashMap::new()),
            tools: Mutex::new(HashMap::new()),
            reach: super::reach::ReachCache::new(config.reach_cache_max_entries),
            next_id: AtomicU64::new(1),
        })
    }

    /// The guarded HTTP client (SSRF policy, same-origin redirects), for authorization.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What is cached for a key: its era and negotiated version.
    pub fn known(&self, key: &str) -> Option<Known> {
        self.cached(key)
    }

    fn cached(&self, key: &str) -> Option<Known> {
        self.known.lock().ok().and_then(|m| m.get(key).cloned())
    }

    fn remember(&self, key: &str, known: &Known) {
        if let Ok(mut m) = self.known.lock() {
            m.insert(key.to_owned(), known.clone());
        }
    }

    /// The per-process cache of server rows and unsealed credentials (see `reach.rs`).
    pub(crate) fn reach_cache(&self) -> &super::reach::ReachCache {
        &self.reach
    }

    /// Drops everything cached for a key (the server was deleted or its credentials changed).
    pub fn forget(&self, key: &str) {
        self.reach.invalidate(key);
        if let Ok(mut m) = self.known.lock() {
            m.remove(key);
        }
        if let Ok(mut m) = self.tools.lock() {
            m.remove(key);
        }
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Detects the era afresh (cached on success); a 401 is reported, not an error.
    pub async fn probe(&self, t: &Target<'_>) -> Result<Probe, McpError> {
        self.forget(t.key);
        match self.detect(t).await {
            Ok(known) if known.era == Era::Modern => {
                let known = self.discover(t, known).await;
                self.remember(t.key, &known);
                Ok(Probe {
                    known: Some(known),
                    needs_authorization: false,
                })
            }
            Ok(known) => Ok(Probe {
                known: Some(known),
                needs_authorization: false,
            }),
            Err(McpError::NeedsAuthorization) => Ok(Probe {
                known: None,
                needs_authorization: true,
            }),
            Err(e) => Err(e),
        }
    }

    /// Modern era: `server/discover` (every modern server implements it) for the server's
    /// identity and the versions it supports. Best effort: a server that fails it is still used,
    /// with what `tools/list` told us.
    async fn discover(&self, t: &Target<'_>, mut known: Known) -> Known {
        let reply = match self
            .send(t, &known, "server/discover", json!({}), &[], true)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(server = t.key, error = %e, "server/discover failed");
                return known;
            }
        };
        let Ok(result) = result_of(&reply) else {
            return known;
        };
        if let Some(info) = result
            .get("_meta")
            .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
        {
            known.server_info = Some(info.clone());
        }
        let supported = result.get("supportedVersions").and_then(Value::as_array);
        if supported.is_some_and(|v| !v.iter().any(|x| x == MODERN_VERSION)) {
            tracing::warn!(
                server = t.key,
                "server/discover does not list {MODERN_VERSION}, though the server answered it"
            );
        }
        known
    }

    /// Spec §5.1: a modern `tools/list` first (every server implements it); a 2xx with
    /// `resultType` is modern, a 2xx without it a stateless legacy server usable as-is, a 4xx
    /// that is not a modern JSON-RPC error sends us to legacy `initialize`.
    async fn detect(&self, t: &Target<'_>) -> Result<Known, McpError> {
        let modern = Known {
            era: Era::Modern,
            version: MODERN_VERSION.to_owned(),
            session: None,
            server_info: None,
        };
        let reply = self
            .send(t, &modern, "tools/list", json!({}), &[], true)
            .await?;
        let known = match reply.status {
            401 => return Err(McpError::NeedsAuthorization),
            200..=299 => {
                let result = reply.message.as_ref().and_then(|m| m.get("result"));
                match result {
                    Some(r) if r.get("resultType").is_some() => Known {
                        server_info: r
                            .get("_meta")
                            .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
                            .cloned(),
                        ..modern
                    },
                    Some(_) => Known {
                        era: Era::Legacy,
                        version: reply
                            .header("mcp-protocol-version")
                            .unwrap_or(LEGACY_VERSIONS[0])
                            .to_owned(),
                        session: None,
                        server_info: None,
                    },
                    None => return Err(McpError::Malformed),
                }
            }
            400..=499
                if reply
                    .error_code()
                    .is_some_and(|c| MODERN_ERRORS.contains(&c) && c != -32022) =>
            {
                modern
            }
            400..=499 => self.initialize(t).await?,
            status => return Err(McpError::Http(status)),
        };
        self.remember(t.key, &known);
        tracing::debug!(server = t.key, era = known.era.as_str(), version = %known.version, "MCP era detected");
        Ok(known)
    }

    /// Legacy lifecycle: `initialize`, then `notifications/initialized` on the new session.
    async fn initialize(&self, t: &Target<'_>) -> Result<Known, McpError> {
        let body = json!({
            "jsonrpc": "2.0",
            "id": self.id(),
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSIONS[0],
                "capabilities": {},
                "clientInfo": client_info(),
            }
        });
        let reply =
            transport::post(&self.http, t.url, t.bearer, &[], &body, &self.limits, true).await?;
        if reply.status == 401 {
            return Err(McpError::NeedsAuthorization);
        }
        let result = result_of(&reply)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .filter(|v| LEGACY_VERSIONS.contains(v))
            .ok_or(McpError::UnsupportedServer)?
            .to_owned();
        let known = Known {
            era: Era::Legacy,
            version,
            session: reply
                .header("mcp-session-id")
                .filter(|s| !s.is_empty() && s.bytes().all(|b| (0x21..0x7f).contains(&b)))
                .map(str::to_owned),
            server_info: result.get("serverInfo").cloned(),
        };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let headers = legacy_headers(&known);
        let ack = transport::post(
            &self.http,
            t.url,
            t.bearer,
            &headers,
            &note,
            &self.limits,
            true,
        )
        .await?;
        if !(200..300).contains(&ack.status) {
            return Err(McpError::Http(ack.status));
        }
        Ok(known)
    }

    /// One JSON-RPC request in the era the server speaks, returning its `result`. `replayable`:
    /// whether it may be sent again when a reused connection turns out closed before any
    /// answer (see `transport::post`).
    pub async fn request(
        &self,
        t: &Target<'_>,
        method: &str,
        params: Value,
        extra_headers: &[(String, String)],
        replayable: bool,
    ) -> Result<Value, McpError> {
        let mut retried = false;
        loop {
            let known = match self.cached(t.key) {
                Some(k) => k,
                None => self.detect(t).await?,
            };
            let reply = self
                .send(t, &known, method, params.clone(), extra_headers, replayable)
                .await?;
            match judge(&known, reply)? {
                Outcome::Done(result) => return Ok(result),
                Outcome::Stale if !retried => {
                    retried = true;
                    tracing::info!(
                        server = t.key,
                        era = known.era.as_str(),
                        "MCP session or era no longer holds; detecting again"
                    );
                    self.forget(t.key);
                    // Legacy: the session expired; re-initialize once, without the old id.
                    // Modern: the failed request was itself the modern probe, and its answer
                    // was not a modern one, so detection continues with legacy `initialize`.
                    let fresh = self.initialize(t).await?;
                    self.remember(t.key, &fresh);
                }
                Outcome::Stale => return Err(McpError::UnsupportedServer),
            }
        }
    }

    async fn send(
        &self,
        t: &Target<'_>,
        known: &Known,
        method: &str,
        mut params: Value,
        extra_headers: &[(String, String)],
        replayable: bool,
    ) -> Result<Reply, McpError> {
        let mut headers = match known.era {
            Era::Legacy => legacy_headers(known),
            Era::Modern => {
                let mut h = vec![
                    ("MCP-Protocol-Version".to_owned(), known.version.clone()),
                    ("Mcp-Method".to_owned(), method.to_owned()),
                ];
                let name = match method {
                    "tools/call" | "prompts/get" => params.get("name"),
                    "resources/read" => params.get("uri"),
                    _ => None,
                };
                if let Some(name) = name.and_then(Value::as_str) {
                    h.push(("Mcp-Name".to_owned(), header_safe(name)));
                }
                if let Some(obj) = params.as_object_mut() {
                    let meta = obj
                        .entry("_meta")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(meta) = meta.as_object_mut() {
                        meta.insert(
                            "io.modelcontextprotocol/protocolVersion".into(),
                            json!(known.version),
                        );
                        meta.insert(
                            "io.modelcontextprotocol/clientCapabilities".into(),
                            json!({}),
                        );
                        meta.insert("io.modelcontextprotocol/clientInfo".into(), client_info());
                    }
                }
                h.extend(extra_headers.iter().cloned());
                h
            }
        };
        headers.dedup();
        let body = json!({"jsonrpc": "2.0", "id": self.id(), "method": method, "params": params});
        transport::post(
            &self.http,
            t.url,
            t.bearer,
            &headers,
            &body,
            &self.limits,
            replayable,
        )
        .await
    }

    /// Every tool of the server, following `nextCursor` (at most `max_pages`), reused until the
    /// server's `ttlMs` (or `list_ttl_secs`) runs out on the injected clock.
    pub async fn list_tools(&self, t: &Target<'_>) -> Result<Arc<ToolList>, McpError> {
        let now = self.clock.now();
        if let Some(hit) = self
            .tools
            .lock()
            .ok()
            .and_then(|m| m.get(t.key).cloned())
            .filter(|l| l.expires_at > now)
        {
            return Ok(hit);
        }
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut ttl = self.list_ttl;
        for page in 0..self.max_pages {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request(t, "tools/list", params, &[], true).await?;
            if page == 0
                && let Some(ms) = result.get("ttlMs").and_then(Value::as_u64)
            {
                ttl = Duration::from_millis(ms);
            }
            let Some(items) = result.get("tools").and_then(Value::as_array) else {
                return Err(McpError::Malformed);
            };
            tools.extend(items.iter().filter(|tool| usable_tool(tool)).cloned());
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        if cursor.is_some() {
            tracing::warn!(
                server = t.key,
                pages = self.max_pages,
                "MCP tools/list has more pages than connectors.mcp.max_pages; listing cut"
            );
        }
        let list = Arc::new(ToolList {
            tools,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
        });
        if let Ok(mut m) = self.tools.lock() {
            m.insert(t.key.to_owned(), list.clone());
        }
        Ok(list)
    }

    /// Calls a tool after checking `arguments` against its `inputSchema`: nothing is sent when
    /// they do not match. The result keeps `content`, `structuredContent` and `isError`.
    pub async fn call_tool(
        &self,
        t: &Target<'_>,
        tool: &Value,
        arguments: Value,
    ) -> Result<Value, McpError> {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or(McpError::Malformed)?;
        let arguments = match arguments {
            Value::Null => json!({}),
            other => other,
        };
        if let Some(schema) = tool.get("inputSchema")
            && let Err(problems) = schema::validate(schema, &arguments)
        {
            return Err(McpError::InvalidArguments(problems.join("; ")));
        }
        let era = self.cached(t.key).map(|k| k.era);
        let headers = if era == Some(Era::Modern) {
            param_headers(tool, &arguments)
        } else {
            Vec::new()
        };
        let result = self
            .request(
                t,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
                &headers,
                replayable_tool(tool),
            )
            .await?;
        Ok(shape_result(result))
    }
}

/// A tool call is sent again after a connection failure only when the tool says a repeat is
/// harmless (`readOnlyHint` or `idempotentHint`): the server may have run it before it failed.
fn replayable_tool(tool: &Value) -> bool {
    let hint = |name: &str| {
        tool.get("annotations")
            .and_then(|a| a.get(name))
            .and_then(Value::as_bool)
            == Some(true)
    };
    hint("readOnlyHint") || hint("idempotentHint")
}

fn client_info() -> Value {
    json!({"name": "switchboard", "version": env!("CARGO_PKG_VERSION")})
}

fn legacy_headers(known: &Known) -> Vec<(String, String)> {
    let mut h = vec![("MCP-Protocol-Version".to_owned(), known.version.clone())];
    if let Some(session) = &known.session {
        h.push(("Mcp-Session-Id".to_owned(), session.clone()));
    }
    h
}

fn result_of(reply: &Reply) -> Result<Value, McpError> {
    if reply.status == 401 {
        return Err(McpError::NeedsAuthorization);
    }
    if reply.status == 403
        && let Some(challenge) = super::auth::Challenge::from_headers(&reply.headers)
        && challenge.error.as_deref() == Some("insufficient_scope")
    {
        return Err(McpError::InsufficientScope(
            challenge.scope.unwrap_or_default(),
        ));
    }
    if let Some(err) = reply.message.as_ref().and_then(|m| m.get("error")) {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(McpError::server(code, message));
    }
    if !(200..300).contains(&reply.status) {
        return Err(McpError::Http(reply.status));
    }
    reply
        .message
        .as_ref()
        .and_then(|m| m.get("result"))
        .cloned()
        .ok_or(McpError::Malformed)
}

/// Whether a reply means the cached era or session no longer holds.
fn judge(known: &Known, reply: Reply) -> Result<Outcome, McpError> {
    let stale = match known.era {
        // 404 = expired session (spec); server-everything answers 400 for an unknown session.
        Era::Legacy => {
            reply.status == 404
                || (reply.status == 400
                    && known.session.is_some()
                    && reply
                        .error_code()
                        .is_none_or(|c| !(-32602..=-32600).contains(&c)))
        }
        // A modern server answers every request in modern terms; a plain 4xx means the server
        // behind the URL changed.
        Era::Modern => {
            matches!(reply.status, 400 | 404 | 405 | 406)
                && reply
                    .error_code()
                    .is_none_or(|c| !MODERN_ERRORS.contains(&c) && c != -32601 && c != -32602)
        }
    };
    if stale {
        return Ok(Outcome::Stale);
    }
    result_of(&reply).map(Outcome::Done)
}

/// Modern tools may mark input properties with `x-mcp-header`; a tool whose annotation is not a
/// valid header-name token is dropped (spec §5.3).
fn usable_tool(tool: &Value) -> bool {
    let Some(name) = tool.get("name").and_then(Value::as_str) else {
        return false;
    };
    if name.is_empty() || name.len() > 128 {
        return false;
    }
    let props = tool
        .get("inputSchema")
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let valid = props.is_none_or(|props| {
        props.values().all(|p| match p.get("x-mcp-header") {
            None => true,
            Some(Value::String(h)) => {
                !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }
            Some(_) => false,
        })
    });
    if !valid {
        tracing::warn!(
            tool = name,
            "MCP tool dropped: invalid x-mcp-header annotation"
        );
    }
    valid
}

fn param_headers(tool: &Value, arguments: &Value) -> Vec<(String, String)> {
    let Some(props) = tool
        .get("inputSchema")
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(key, p)| {
            let header = p.get("x-mcp-header")?.as_str()?;
            let value = match arguments.get(key)? {
                Value::String(s) => header_safe(s),
                Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((format!("Mcp-Param-{header}"), value))
        })
        .collect()
}

/// The parts of a `tools/call` result a client uses, with `isError` always present.
fn shape_result(result: Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "content".into(),
        result.get("content").cloned().unwrap_or_else(|| json!([])),
    );
    if let Some(s) = result.get("structuredContent") {
        out.insert("structuredContent".into(), s.clone());
    }
    out.insert(
        "isError".into(),
        json!(
            result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
    );
    if let Some(rt) = result.get("resultType") {
        out.insert("resultType".into(), rt.clone());
    }
    Value::Object(out)
}
