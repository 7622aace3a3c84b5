//! MCP servers the tests talk to, all on 127.0.0.1: the reference server
//! `@modelcontextprotocol/server-everything` (legacy era, a real Node process from
//! `tests/mcp`, confined to loopback by `listen-loopback.js`), and a modern-era (2026-07-28)
//! stand-in that checks the per-request headers and `_meta` the way spec §5.3 requires.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

static NPM_CI: Mutex<bool> = Mutex::new(false);

pub fn mcp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

/// `npm ci` in tests/mcp once per test binary when node_modules is missing.
pub fn ensure_installed() {
    let mut done = NPM_CI.lock().unwrap_or_else(|e| e.into_inner());
    let entry =
        mcp_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let sdk = mcp_dir().join(
        "node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js",
    );
    if *done || (entry.exists() && sdk.exists()) {
        *done = true;
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(mcp_dir())
        .status()
        .expect("npm runs (Node.js is needed for the MCP tests)");
    assert!(status.success(), "npm ci in tests/mcp failed");
    *done = true;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server-everything in `streamableHttp` mode; killed (by its own pid) on drop.
pub struct Everything {
    pub port: u16,
    child: Child,
}

impl Everything {
    pub fn start() -> Self {
        ensure_installed();
        Self::on_port(free_port())
    }

    fn on_port(port: u16) -> Self {
        // An empty environment: its get-env tool prints the environment it was started with.
        let child = Command::new("node")
            .args([
                "-r",
                "./listen-loopback.js",
                "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
                "streamableHttp",
            ])
            .current_dir(mcp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts server-everything");
        let ready = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                ready.elapsed() < Duration::from_secs(20),
                "server-everything did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Kills the process and starts a new one on the same port: every session is gone.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(started.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(20));
        }
        *self = Self::on_port(port);
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The modern-era stand-in: stateless, every POST checked for `MCP-Protocol-Version`,
/// `Mcp-Method` (= the body's method), `Mcp-Name` (= `params.name` for tools/call) and the
/// required `_meta`; a legacy `initialize` or a request without the headers gets the modern
/// `-32020 HeaderMismatch`. Tools: `add(a, b)` (structuredContent), `fail()` (isError), and
/// `page-two` on the second `tools/list` page.
pub struct Modern {
    pub server: MockServer,
}

struct ModernResponder {
    bearer: Option<String>,
}

fn rpc_error(status: u16, id: &Value, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}
    }))
}

fn complete(id: &Value, mut result: Value) -> ResponseTemplate {
    result["resultType"] = json!("complete");
    result["_meta"] = json!({"io.modelcontextprotocol/serverInfo": {"name": "modern-stand-in", "version": "1.0.0"}});
    ResponseTemplate::new(200).set_body_json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

impl Respond for ModernResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let id = body.get("id").cloned().unwrap_or(Value::Null);
        if let Some(want) = &self.bearer
            && header("authorization") != Some(&format!("Bearer {want}"))
        {
            return ResponseTemplate::new(401).insert_header(
                "www-authenticate",
                "Bearer error=\"invalid_token\", resource_metadata=\"http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp\"",
            );
        }
        let m = body.get("method").and_then(Value::as_str).unwrap_or("");
        let params = body.get("params").cloned().unwrap_or(json!({}));
        if header("mcp-protocol-version") != Some("2026-07-28") || header("mcp-method") != Some(m) {
            return rpc_error(400, &id, -32020, "HeaderMismatch");
        }
        let meta = &params["_meta"];
        if meta["io.modelcontextprotocol/protocolVersion"] != json!("2026-07-28")
            || !meta["io.modelcontextprotocol/clientCapabilities"].is_object()
        {
            return rpc_error(400, &id, -32602, "required _meta missing");
        }
        match m {
            "tools/list" => match params.get("cursor").and_then(Value::as_str) {
                None => complete(
                    &id,
                    json!({"ttlMs": 60000, "cacheScope": "authorization", "nextCursor": "p2", "tools": [
                        {"name": "add", "description": "Adds two numbers",
                         "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"], "additionalProperties": false},
                         "outputSchema": {"type": "object", "properties": {"sum": {"type": "number"}}}},
                        {"name": "fail", "inputSchema": {"type": "object"}}
                    ]}),
                ),
                Some("p2") => complete(
                    &id,
                    json!({"ttlMs": 60000, "tools": [
                        {"name": "page-two", "inputSchema": {"type": "object"}},
                        {"name": "big", "inputSchema": {"type": "object"}},
                        {"name": "slow", "inputSchema": {"type": "object"}},
                        {"name": "bad-header", "inputSchema": {"type": "object", "properties": {"x": {"type": "string", "x-mcp-header": "no spaces allowed"}}}}
                    ]}),
                ),
                Some(_) => rpc_error(400, &id, -32602, "bad cursor"),
            },
            "tools/call" => {
                let name = params["name"].as_str().unwrap_or("");
                if header("mcp-name") != Some(name) {
                    return rpc_error(400, &id, -32020, "HeaderMismatch: Mcp-Name");
                }
                let args = &params["arguments"];
                match name {
                    "add" => {
                        let sum =
                            args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0);
                        complete(
                            &id,
                            json!({"content": [{"type": "text", "text": format!("{sum}")}], "structuredContent": {"sum": sum}}),
                        )
                    }
                    "fail" => complete(
                        &id,
                        json!({"content": [{"type": "text", "text": "it broke"}], "isError": true}),
                    ),
                    "page-two" => {
                        complete(&id, json!({"content": [{"type": "text", "text": "two"}]}))
                    }
                    "big" => complete(
                        &id,
                        json!({"content": [{"type": "text", "text": "x".repeat(20_000)}]}),
                    ),
                    // Longer than the 1 s request timeout the test configures.
                    "slow" => {
                        complete(&id, json!({"content": []})).set_delay(Duration::from_secs(3))
                    }
                    _ => rpc_error(200, &id, -32602, "unknown tool"),
                }
            }
            // Names the server with a title that tools/list's `_meta` does not carry.
            "server/discover" => ResponseTemplate::new(200).set_body_json(json!({
                "jsonrpc": "2.0", "id": id, "result": {
                    "resultType": "complete", "supportedVersions": ["2026-07-28"],
                    "capabilities": {"tools": {}}, "ttlMs": 60000, "cacheScope": "global",
                    "_meta": {"io.modelcontextprotocol/serverInfo":
                        {"name": "modern-stand-in", "version": "1.0.0", "title": "Modern stand-in"}}
                }
            })),
            _ => rpc_error(404, &id, -32601, "Method not found"),
        }
    }
}

impl Modern {
    pub async fn start(bearer: Option<&str>) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ModernResponder {
                bearer: bearer.map(str::to_owned),
            })
            .mount(&server)
            .await;
        Self { server }
    }

    pub fn url(&self) -> String {
        format!("{}/mcp", self.server.uri())
    }

    /// The JSON-RPC methods received, in order.
    pub async fn methods(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|b| b["method"].as_str().map(str::to_owned))
            })
            .collect()
    }
}

/// A minimal legacy (2025-11-25) responder for a `MockServer`: `initialize` opens session
/// `s-1`, `notifications/initialized` gets 202, requests without the session get 400 -32000
/// (as server-everything answers), `tools/list` lists `legacy-echo`.
pub struct LegacyResponder;

impl Respond for LegacyResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let id = body.get("id").cloned().unwrap_or(Value::Null);
        let session = req
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok());
        match body["method"].as_str().unwrap_or("") {
            "initialize" => ResponseTemplate::new(200)
                .insert_header("mcp-session-id", "s-1")
                .set_body_json(json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "legacy-stand-in", "version": "1.0.0"}}})),
            _ if session != Some("s-1") => rpc_error(
                400,
                &Value::Null,
                -32000,
                "Bad Request: Server not initialized",
            ),
            "notifications/initialized" => ResponseTemplate::new(202),
            "tools/list" => {
                ResponseTemplate::new(200).set_body_json(json!({"jsonrpc": "2.0", "id": id,
                "result": {"tools": [{"name": "legacy-echo", "inputSchema": {"type": "object"}}]}}))
            }
            _ => rpc_error(200, &id, -32601, "Method not found"),
        }
    }
}

/// A modern-era MCP server on a raw socket (wiremock cannot drop a connection) that, the first
/// time each tool is called, reads the whole request and closes the connection without an
/// answer: what the client sees when a kept-alive connection dies with the call on it, or the
/// server dies mid-call. It counts every call it read, per tool. `write` has no annotations;
/// `lookup` is `readOnlyHint`.
pub struct Dropping {
    port: u16,
    pub calls: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl Dropping {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let seen = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = seen.clone();
                std::thread::spawn(move || Self::serve(stream, &seen));
            }
        });
        Self { port, calls }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn calls_of(&self, tool: &str) -> usize {
        self.calls.lock().unwrap().get(tool).copied().unwrap_or(0)
    }

    fn serve(
        stream: std::net::TcpStream,
        seen: &std::sync::Mutex<std::collections::HashMap<String, usize>>,
    ) {
        use std::io::{BufRead, Read, Write};
        let mut writer = stream.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(stream);
        // One keep-alive connection: requests until the client closes it.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut result = match msg["method"].as_str().unwrap_or("") {
                "tools/list" => json!({"ttlMs": 60000, "tools": [
                    {"name": "write", "inputSchema": {"type": "object"}},
                    {"name": "lookup", "inputSchema": {"type": "object"},
                     "annotations": {"readOnlyHint": true}},
                ]}),
                "server/discover" => json!({
                    "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                    "ttlMs": 60000,
                }),
                "tools/call" => {
                    let name = msg["params"]["name"].as_str().unwrap_or("").to_owned();
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        let n = seen.entry(name.clone()).or_insert(0);
                        *n += 1;
                        *n
                    };
                    if n == 1 {
                        // Read, maybe acted on, never answered.
                        let _ = writer.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    json!({"content": [{"type": "text", "text": format!("{name} ran")}]})
                }
                _ => json!({}),
            };
            result["resultType"] = json!("complete");
            let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            if writer.write_all(head.as_bytes()).is_err()
                || writer.write_all(answer.as_bytes()).is_err()
            {
                return;
            }
        }
    }
}
