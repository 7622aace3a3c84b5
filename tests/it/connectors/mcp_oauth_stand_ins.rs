//! OAuth-protected MCP servers for the authorization tests, on 127.0.0.1:
//! - the real example server of `@modelcontextprotocol/sdk` (`--oauth --oauth-strict`: a demo
//!   authorization server with dynamic registration that auto-approves, and a resource server
//!   that accepts only tokens issued for `http://localhost:<port>/mcp`), confined to loopback;
//! - `OAuthStandIn`, one wiremock server playing protected-resource metadata, an authorization
//!   server whose issuer has a path (registration, authorize, token with PKCE and refresh), and
//!   a modern-era MCP endpoint that checks the bearer and its scopes (403 `insufficient_scope`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SDK's `simpleStreamableHttp.js --oauth --oauth-strict`; killed (by pid) on drop.
pub struct SdkOAuthServer {
    pub mcp_port: u16,
    pub auth_port: u16,
    child: Child,
}

impl SdkOAuthServer {
    pub fn start() -> Self {
        super::mcp_stand_ins::ensure_installed();
        let (mcp_port, auth_port) = (free_port(), free_port());
        let child = Command::new("node")
            .args([
                "-r",
                "./listen-loopback.js",
                "node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js",
                "--oauth",
                "--oauth-strict",
            ])
            .current_dir(super::mcp_stand_ins::mcp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MCP_PORT", mcp_port.to_string())
            .env("MCP_AUTH_PORT", auth_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts the SDK's OAuth example server");
        let ready = Instant::now();
        for port in [mcp_port, auth_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    ready.elapsed() < Duration::from_secs(20),
                    "the SDK example did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self {
            mcp_port,
            auth_port,
            child,
        }
    }

    /// The URL its strict mode expects as `resource`.
    pub fn url(&self) -> String {
        format!("http://localhost:{}/mcp", self.mcp_port)
    }
}

impl Drop for SdkOAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the stand-in saw and holds.
#[derive(Default)]
pub struct Seen {
    pub registrations: usize,
    pub authorize_queries: Vec<HashMap<String, String>>,
    pub token_grants: Vec<HashMap<String, String>>,
    pub bearers: Vec<String>,
    /// code → (client_id, code_challenge, scope, resource)
    codes: HashMap<String, (String, String, String, String)>,
    /// access token → scopes
    tokens: HashMap<String, Vec<String>>,
    refresh: HashMap<String, Vec<String>>,
    next: usize,
}

#[derive(Clone)]
pub struct Behaviour {
    /// What the resource metadata names as authorization server (`None`: the stand-in's own).
    pub authorization_server: Option<String>,
    /// What the AS metadata claims as its issuer (`None`: the right one).
    pub metadata_issuer: Option<String>,
    /// Send `iss` on the authorize redirect.
    pub send_iss: bool,
    /// Advertise Client ID Metadata Documents (and accept this client id, public, at /token).
    pub cimd_client: Option<String>,
    /// A client registered out of band: (client_id, client_secret), accepted at /token with
    /// `client_secret_post`.
    pub preregistered: Option<(String, String)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            authorization_server: None,
            metadata_issuer: None,
            send_iss: true,
            cimd_client: None,
            preregistered: None,
        }
    }
}

pub struct OAuthStandIn {
    pub server: MockServer,
    pub seen: Arc<Mutex<Seen>>,
}

struct Responder {
    base: String,
    behaviour: Behaviour,
    seen: Arc<Mutex<Seen>>,
}

fn form(req: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect()
}

fn oauth_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": error }))
}

impl Responder {
    fn issuer(&self) -> String {
        format!("{}/as", self.base)
    }

    fn mcp(&self, req: &Request) -> ResponseTemplate {
        let challenge = format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            self.base
        );
        let token = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let mut seen = self.seen.lock().unwrap();
        let scopes = match token.as_ref().and_then(|t| seen.tokens.get(t)) {
            Some(s) => s.clone(),
            None => return ResponseTemplate::new(401).insert_header("www-authenticate", challenge),
        };
        seen.bearers.push(token.unwrap_or_default());
        drop(seen);
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let id = body["id"].clone();
        let done = |result: Value| {
            let mut result = result;
            result["resultType"] = json!("complete");
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
        };
        match body["method"].as_str().unwrap_or("") {
            "tools/list" => done(json!({"tools": [
                {"name": "whoami", "inputSchema": {"type": "object"}},
                {"name": "admin", "inputSchema": {"type": "object"}},
            ]})),
            "tools/call" => match body["params"]["name"].as_str() {
                Some("admin") if !scopes.iter().any(|s| s == "write") => ResponseTemplate::new(403)
                    .insert_header(
                        "www-authenticate",
                        "Bearer error=\"insufficient_scope\", scope=\"read write\"",
                    ),
                Some(name) => done(json!({"content": [
                    {"type": "text", "text": format!("{name} with {}", scopes.join(" "))}
                ]})),
                None => done(json!({"content": [], "isError": true})),
            },
            _ => ResponseTemplate::new(404).set_body_json(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "nope"}}),
            ),
        }
    }

    fn token(&self, req: &Request) -> ResponseTemplate {
        let f = form(req);
        let mut seen = self.seen.lock().unwrap();
        seen.token_grants.push(f.clone());
        let client_id = f.get("client_id").cloned().unwrap_or_default();
        let secret = f.get("client_secret").map(String::as_str);
        let registered = (client_id == "client-1" && secret == Some("mcpsecret_1"))
            || self
                .behaviour
                .preregistered
                .as_ref()
                .is_some_and(|(id, s)| *id == client_id && secret == Some(s.as_str()));
        let cimd = self.behaviour.cimd_client.as_ref() == Some(&client_id)
            && !f.contains_key("client_secret");
        if !registered && !cimd {
            return oauth_error(401, "invalid_client");
        }
        let resource = format!("{}/mcp", self.base);
        if f.get("resource") != Some(&resource) {
            return oauth_error(400, "invalid_target");
        }
        let scopes: Vec<String> = match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = f.get("code").cloned().unwrap_or_default();
                let Some((client, challenge, scope, res)) = seen.codes.remove(&code) else {
                    return oauth_error(400, "invalid_grant");
                };
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
                    &ring::digest::SHA256,
                    verifier.as_bytes(),
                ));
                if client != client_id || computed != challenge || res != resource {
                    return oauth_error(400, "invalid_grant");
                }
                scope.split_whitespace().map(str::to_owned).collect()
            }
            Some("refresh_token") => {
                let rt = f.get("refresh_token").cloned().unwrap_or_default();
                match seen.refresh.remove(&rt) {
                    Some(s) => s,
                    None => return oauth_error(400, "invalid_grant"),
                }
            }
            _ => return oauth_error(400, "unsupported_grant_type"),
        };
        seen.next += 1;
        let (access, refresh) = (
            format!("mcpat_{}", seen.next),
            format!("mcprt_{}", seen.next),
        );
        seen.tokens.insert(access.clone(), scopes.clone());
        seen.refresh.insert(refresh.clone(), scopes.clone());
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access, "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": refresh, "scope": scopes.join(" "),
        }))
    }
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path();
        let get = req.method.as_str() == "GET";
        match path {
            "/mcp" => self.mcp(req),
            "/.well-known/oauth-protected-resource/mcp" if get => ResponseTemplate::new(200)
                .set_body_json(json!({
                    "resource": format!("{}/mcp", self.base),
                    "authorization_servers": [self
                        .behaviour
                        .authorization_server
                        .clone()
                        .unwrap_or_else(|| self.issuer())],
                    "scopes_supported": ["read"],
                })),
            "/.well-known/oauth-authorization-server/as" if get => {
                let issuer = self.issuer();
                ResponseTemplate::new(200).set_body_json(json!({
                    "issuer": self.behaviour.metadata_issuer.clone().unwrap_or(issuer.clone()),
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": format!("{issuer}/token"),
                    "registration_endpoint": format!("{issuer}/register"),
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
                    "client_id_metadata_document_supported": self.behaviour.cimd_client.is_some(),
                }))
            }
            "/as/register" => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                self.seen.lock().unwrap().registrations += 1;
                ResponseTemplate::new(201).set_body_json(json!({
                    "client_id": "client-1", "client_secret": "mcpsecret_1",
                    "token_endpoint_auth_method": "client_secret_post",
                    "redirect_uris": body["redirect_uris"],
                }))
            }
            "/as/authorize" if get => {
                let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
                let mut seen = self.seen.lock().unwrap();
                seen.authorize_queries.push(q.clone());
                seen.next += 1;
                let code = format!("code-{}", seen.next);
                seen.codes.insert(
                    code.clone(),
                    (
                        q["client_id"].clone(),
                        q["code_challenge"].clone(),
                        q.get("scope").cloned().unwrap_or_default(),
                        q.get("resource").cloned().unwrap_or_default(),
                    ),
                );
                let mut to = url::Url::parse(&q["redirect_uri"]).unwrap();
                to.query_pairs_mut()
                    .append_pair("code", &code)
                    .append_pair("state", &q["state"]);
                if self.behaviour.send_iss {
                    to.query_pairs_mut().append_pair("iss", &self.issuer());
                }
                ResponseTemplate::new(302).insert_header("location", to.as_str())
            }
            "/as/token" => self.token(req),
            _ => ResponseTemplate::new(404),
        }
    }
}

impl OAuthStandIn {
    /// Forgets every token it issued (a restarted in-memory server): they now get 401.
    pub fn forget_tokens(&self) {
        let mut seen = self.seen.lock().unwrap();
        seen.tokens.clear();
        seen.refresh.clear();
    }

    pub async fn start(behaviour: Behaviour) -> Self {
        let server = MockServer::start().await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                base: server.uri(),
                behaviour,
                seen: seen.clone(),
            })
            .mount(&server)
            .await;
        Self { server, seen }
    }

    pub fn url(&self) -> String {
        format!("{}/mcp", self.server.uri())
    }
}
