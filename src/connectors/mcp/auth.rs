//! MCP authorization on the wire (spec §5.5): the `WWW-Authenticate` challenge, protected-resource
//! metadata (RFC 9728), authorization-server metadata (RFC 8414 / OIDC, issuer checked), dynamic
//! client registration (RFC 7591), the authorize URL (PKCE S256 + `resource`) and the token
//! endpoint. Every URL a server hands us is checked by the SSRF guard before it is fetched, and
//! fetched with the guarded client (resolved address checked, redirects same-origin only).

use super::error::McpError;
use super::transport::{self, Limits};
use crate::connectors::oauth;
use crate::connectors::vault::Plain;
use crate::platform::ssrf;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use url::Url;

/// Largest metadata, registration or token response read.
const MAX_BODY: usize = 64 * 1024;

/// A `Bearer` challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    pub error: Option<String>,
    pub scope: Option<String>,
    pub resource_metadata: Option<String>,
}

impl Challenge {
    /// The first `Bearer` challenge among the response's `WWW-Authenticate` headers.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Self::parse)
    }

    /// `Bearer k="v", k2=token, …` (RFC 6750 §3); other schemes give `None`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut out = Self::default();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars
                .by_ref()
                .take_while(|c| *c != '=')
                .collect::<String>()
                .trim()
                .to_ascii_lowercase();
            if key.is_empty() {
                break;
            }
            let mut val = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                val.push(n);
                            }
                        }
                        '"' => break,
                        c => val.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
                val = val.trim().to_owned();
            }
            match key.as_str() {
                "error" => out.error = Some(val),
                "scope" => out.scope = Some(val),
                "resource_metadata" => out.resource_metadata = Some(val),
                _ => {}
            }
        }
        Some(out)
    }

    pub fn scopes(&self) -> Vec<String> {
        split_scopes(self.scope.as_deref().unwrap_or(""))
    }
}

pub fn split_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in s.split_whitespace() {
        if !out.iter().any(|o| o == scope) {
            out.push(scope.to_owned());
        }
    }
    out
}

/// The union of scope lists, first-seen order, no duplicates.
pub fn union(lists: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        for s in *list {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

/// What the authorization server told us about itself (the fields we use).
#[derive(Debug, Clone)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub registration_endpoint: Option<Url>,
    pub cimd_supported: bool,
    pub auth_methods: Option<Vec<String>>,
}

/// Everything discovery found: the `resource` to name, the scopes to ask for, and the server.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub resource: String,
    pub scopes: Vec<String>,
    pub server: ServerMetadata,
}

/// Where discovery runs: the guarded client, the guard's policy, and limits.
pub struct Net<'a> {
    pub http: &'a reqwest::Client,
    pub policy: ssrf::Policy,
    pub limits: &'a Limits,
}

impl Net<'_> {
    /// Parses a URL a server gave us and checks it against the guard.
    pub fn checked(&self, raw: &str) -> Result<Url, McpError> {
        let url = Url::parse(raw)
            .map_err(|_| McpError::Authorization(format!("{raw:?} is not a URL")))?;
        if url.fragment().is_some() {
            return Err(McpError::Authorization(format!(
                "{raw:?} carries a fragment"
            )));
        }
        ssrf::check_url(self.policy, &url).map_err(|e| McpError::UrlNotAllowed(e.to_string()))?;
        Ok(url)
    }

    /// GET a JSON document; `None` for any non-2xx answer (the caller tries the next URL).
    async fn get_json(&self, url: &Url) -> Result<Option<Value>, McpError> {
        let fut = async {
            let resp = self
                .http
                .get(url.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(send_error)?;
            if !resp.status().is_success() {
                return Ok(None);
            }
            Ok(Some(read_json(resp).await?.1))
        };
        tokio::time::timeout(self.limits.timeout, fut)
            .await
            .map_err(|_| McpError::Timeout)?
    }

    /// POST (form or JSON); returns the status and the JSON body (`Null` when not JSON).
    async fn post(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), McpError> {
        let fut = async {
            let resp = req.send().await.map_err(send_error)?;
            read_json(resp).await
        };
        tokio::time::timeout(self.limits.timeout, fut)
            .await
            .map_err(|_| McpError::Timeout)?
    }
}

fn send_error(err: reqwest::Error) -> McpError {
    if let Some(blocked) = ssrf::blocked_by_guard(&err) {
        return McpError::UrlNotAllowed(blocked.to_string());
    }
    if err.is_redirect() {
        return McpError::UrlNotAllowed("a redirect to a refused address".into());
    }
    if err.is_timeout() {
        return McpError::Timeout;
    }
    tracing::debug!(error = %err, "MCP authorization request failed");
    McpError::Unreachable
}

async fn read_json(mut resp: reqwest::Response) -> Result<(u16, Value), McpError> {
    let status = resp.status().as_u16();
    if (300..400).contains(&status) {
        return Err(McpError::UrlNotAllowed(
            "a redirect to another origin, which is not followed".into(),
        ));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(send_error)? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(McpError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((status, serde_json::from_slice(&buf).unwrap_or(Value::Null)))
}

/// The canonical form of a resource URI: lowercase scheme and host (the URL parser does both),
/// no fragment, no trailing slash.
pub fn canonical(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let s = u.to_string();
    match s.strip_suffix('/') {
        Some(t) if u.query().is_none() => t.to_owned(),
        _ => s,
    }
}

/// Sends an unauthenticated `initialize` and reads the challenge of a 401, if any.
pub async fn challenge(net: &Net<'_>, server: &Url) -> Result<Option<Challenge>, McpError> {
    let body = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": super::client::LEGACY_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")},
        }
    });
    let reply = transport::post(net.http, server, None, &[], &body, net.limits, true).await?;
    Ok(match reply.status {
        401 | 403 => Challenge::from_headers(&reply.headers),
        _ => None,
    })
}

/// Protected-resource metadata, then authorization-server metadata (spec §5.5 steps 2–4).
pub async fn discover(
    net: &Net<'_>,
    server: &Url,
    challenge: Option<&Challenge>,
) -> Result<Discovery, McpError> {
    let own = canonical(server);
    let origin = server.origin().ascii_serialization();
    let mut candidates: Vec<Url> = Vec::new();
    if let Some(raw) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        candidates.push(net.checked(raw)?);
    } else {
        let path = server.path().trim_end_matches('/');
        if !path.is_empty() {
            candidates.push(net.checked(&format!(
                "{origin}/.well-known/oauth-protected-resource{path}"
            ))?);
        }
        candidates.push(net.checked(&format!("{origin}/.well-known/oauth-protected-resource"))?);
    }
    let mut prm = None;
    for url in &candidates {
        if let Some(doc) = net.get_json(url).await? {
            prm = Some(doc);
            break;
        }
    }
    let (resource, issuer, supported) = match &prm {
        Some(doc) => {
            let resource = doc.get("resource").and_then(Value::as_str).ok_or_else(|| {
                McpError::Authorization("the resource metadata names no resource".into())
            })?;
            let named = canonical(&Url::parse(resource).map_err(|_| {
                McpError::Authorization("the resource metadata's resource is not a URL".into())
            })?);
            // RFC 9728 §3.3: the metadata must be about this server (or a prefix of it).
            let covers = own == named
                || own
                    .strip_prefix(&named)
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'));
            if !covers {
                return Err(McpError::Authorization(format!(
                    "the resource metadata is for {named}, not {own}"
                )));
            }
            let issuer = doc
                .get("authorization_servers")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find_map(Value::as_str))
                .ok_or_else(|| {
                    McpError::Authorization(
                        "the resource metadata names no authorization server".into(),
                    )
                })?
                .to_owned();
            let supported: Vec<String> = doc
                .get("scopes_supported")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            (named, issuer, supported)
        }
        // No metadata at all (servers of 2025-03-26): the MCP server's origin is the issuer.
        None => (own.clone(), origin.clone(), Vec::new()),
    };
    let server_meta = authorization_server(net, &issuer).await?;
    let scopes = match challenge.map(Challenge::scopes) {
        Some(s) if !s.is_empty() => s,
        _ => supported,
    };
    Ok(Discovery {
        resource,
        scopes,
        server: server_meta,
    })
}

/// RFC 8414 / OIDC discovery in the spec's order; the document's `issuer` must equal `issuer`.
pub async fn authorization_server(net: &Net<'_>, issuer: &str) -> Result<ServerMetadata, McpError> {
    let base = net.checked(issuer)?;
    let origin = base.origin().ascii_serialization();
    let path = base.path().trim_end_matches('/');
    let candidates = if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    };
    let mut found = None;
    for raw in candidates {
        if let Some(doc) = net.get_json(&net.checked(&raw)?).await? {
            found = Some(doc);
            break;
        }
    }
    let doc = found.ok_or_else(|| {
        McpError::Authorization(format!("no authorization server metadata for {issuer}"))
    })?;
    let text = |k: &str| doc.get(k).and_then(Value::as_str);
    if text("issuer") != Some(issuer) {
        return Err(McpError::Authorization(format!(
            "the authorization server metadata is for another issuer than {issuer}"
        )));
    }
    let list = |k: &str| {
        doc.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    if !list("code_challenge_methods_supported").is_some_and(|m| m.iter().any(|m| m == "S256")) {
        return Err(McpError::Authorization(
            "the authorization server does not advertise PKCE S256".into(),
        ));
    }
    let endpoint = |k: &str| -> Result<Url, McpError> {
        net.checked(text(k).ok_or_else(|| {
            McpError::Authorization(format!("the authorization server metadata has no {k}"))
        })?)
    };
    Ok(ServerMetadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        registration_endpoint: text("registration_endpoint")
            .map(|r| net.checked(r))
            .transpose()?,
        cimd_supported: doc
            .get("client_id_metadata_document_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        auth_methods: list("token_endpoint_auth_methods_supported"),
    })
}

/// Our identity at one authorization server and how we authenticate at its token endpoint.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub client_id: String,
    pub secret: Option<Plain>,
    /// `client_secret_post`, `client_secret_basic` or `none`.
    pub method: String,
}

/// Dynamic client registration (RFC 7591). `native` (the CLI) registers a public client.
pub async fn register(
    net: &Net<'_>,
    server: &ServerMetadata,
    redirect_uri: &str,
    native: bool,
) -> Result<ClientAuth, McpError> {
    let endpoint = server.registration_endpoint.as_ref().ok_or_else(|| {
        McpError::Authorization(
            "the authorization server offers no way to register a client \
             (no pre-registered client, Client ID Metadata Document or registration endpoint)"
                .into(),
        )
    })?;
    let offered = |m: &str| {
        server
            .auth_methods
            .as_ref()
            .is_none_or(|list| list.iter().any(|x| x == m))
    };
    let method = if native {
        "none"
    } else if server
        .auth_methods
        .as_ref()
        .is_some_and(|l| l.iter().any(|x| x == "client_secret_post"))
    {
        "client_secret_post"
    } else if offered("client_secret_basic") {
        "client_secret_basic"
    } else {
        "none"
    };
    let body = json!({
        "client_name": "switchboard",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "application_type": if native { "native" } else { "web" },
    });
    let (status, doc) = net
        .post(net.http.post(endpoint.clone()).json(&body))
        .await?;
    let client_id = doc.get("client_id").and_then(Value::as_str);
    let (true, Some(client_id)) = ((200..300).contains(&status), client_id) else {
        return Err(McpError::Authorization(format!(
            "dynamic client registration failed (HTTP {status}{})",
            oauth_error(&doc)
        )));
    };
    let secret = doc
        .get("client_secret")
        .and_then(Value::as_str)
        .map(Plain::new);
    let method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or(if secret.is_some() { method } else { "none" })
        .to_owned();
    Ok(ClientAuth {
        client_id: client_id.to_owned(),
        secret,
        method,
    })
}

fn oauth_error(doc: &Value) -> String {
    doc.get("error")
        .and_then(Value::as_str)
        .map(|e| format!(": {}", oauth::sanitize_code(e)))
        .unwrap_or_default()
}

/// The authorize URL: PKCE S256, `state`, `resource` (always), `scope` when there are scopes.
pub fn authorize_url(
    server: &ServerMetadata,
    client_id: &str,
    redirect_uri: &str,
    state: &Plain,
    verifier: &Plain,
    scopes: &[String],
    resource: &str,
) -> String {
    let mut url = server.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state.expose())
            .append_pair("code_challenge", &oauth::challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
    }
    url.into()
}

/// A token endpoint's answer.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: Plain,
    pub refresh_token: Option<Plain>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

/// How a token request failed.
#[derive(Debug)]
pub enum TokenFailure {
    /// `invalid_grant`: the code or refresh token is no good; authorize again.
    InvalidGrant,
    Other(McpError),
}

impl From<McpError> for TokenFailure {
    fn from(e: McpError) -> Self {
        Self::Other(e)
    }
}

/// POSTs a grant to the token endpoint, authenticating as `client`.
pub async fn token(
    net: &Net<'_>,
    endpoint: &Url,
    client: &ClientAuth,
    grant: &[(&str, &str)],
) -> Result<Tokens, TokenFailure> {
    let mut form: Vec<(&str, &str)> = grant.to_vec();
    let mut req = net.http.post(endpoint.clone());
    match (client.method.as_str(), &client.secret) {
        ("client_secret_basic", Some(secret)) => {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&client.client_id), Some(enc(secret.expose())));
        }
        (_, Some(secret)) if client.method == "client_secret_post" => {
            form.push(("client_id", &client.client_id));
            form.push(("client_secret", secret.expose()));
        }
        _ => form.push(("client_id", &client.client_id)),
    }
    let (status, doc) = net
        .post(
            req.header(reqwest::header::ACCEPT, "application/json")
                .form(&form),
        )
        .await?;
    if !(200..300).contains(&status) {
        if doc.get("error").and_then(Value::as_str) == Some("invalid_grant") {
            return Err(TokenFailure::InvalidGrant);
        }
        return Err(TokenFailure::Other(McpError::Authorization(format!(
            "the token endpoint answered HTTP {status}{}",
            oauth_error(&doc)
        ))));
    }
    let access = doc
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            McpError::Authorization("the token endpoint returned no access_token".into())
        })?;
    Ok(Tokens {
        access_token: Plain::new(access),
        refresh_token: doc
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(Plain::new),
        expires_in: doc.get("expires_in").and_then(Value::as_u64),
        scope: doc.get("scope").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = Challenge::parse(
            r#"Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="http://localhost:3000/.well-known/oauth-protected-resource/mcp""#,
        )
        .unwrap();
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("http://localhost:3000/.well-known/oauth-protected-resource/mcp")
        );
        let c = Challenge::parse(r#"bearer error=insufficient_scope, scope="a b a""#).unwrap();
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(c.scopes(), vec!["a", "b"]);
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert_eq!(Challenge::parse("Bearer"), Some(Challenge::default()));
    }

    #[test]
    fn canonical_resource() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            canonical(&u("HTTPS://MCP.Linear.app/mcp/")),
            "https://mcp.linear.app/mcp"
        );
        assert_eq!(canonical(&u("https://a.example/")), "https://a.example");
        assert_eq!(
            canonical(&u("https://a.example/mcp#x")),
            "https://a.example/mcp"
        );
    }

    #[test]
    fn scope_union_keeps_order() {
        let a = vec!["x".to_owned(), "y".to_owned()];
        let b = vec!["y".to_owned(), "z".to_owned()];
        assert_eq!(union(&[&a, &b]), vec!["x", "y", "z"]);
    }
}
