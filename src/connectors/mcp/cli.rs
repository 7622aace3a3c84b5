//! `switchboard mcp tools URL` and `switchboard mcp call URL TOOL JSON`: the operator's view of
//! an MCP server through the same client (era detection, SSRF guard, schema check, limits).
//! Nothing is written to the database. Exit codes a script can rely on:
//! 0 success, 1 the tool ran and reported `isError`, 2 bad input (URL refused, bad JSON,
//! arguments not matching the schema, unknown tool), 3 the server needs authorization,
//! 4 the server failed or could not be reached.
//!
//! `--oauth` runs the server's authorization (spec §5.5) from the terminal with a loopback
//! redirect (RFC 8252): it listens on 127.0.0.1 on a free port, registers a public client for
//! that redirect URI, prints the URL to open on stderr, waits for the browser's redirect,
//! exchanges the code and uses the token for this one command. Nothing is stored.

use super::auth::{self, Net};
use super::client::{McpClient, Target};
use super::error::McpError;
use super::models::ToolView;
use crate::connectors::oauth;
use crate::connectors::vault::Plain;
use crate::crypto::hmac::constant_time_eq;
use crate::platform::clock::SystemClock;
use crate::platform::config::{AppEnv, Config};
use crate::platform::ssrf;
use serde_json::{Value, json};
use std::sync::Arc;
use url::Url;

pub const EXIT_TOOL_ERROR: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NEEDS_AUTHORIZATION: u8 = 3;
pub const EXIT_SERVER: u8 = 4;

/// What the command prints on stdout (JSON) and the exit code, or an error line for stderr.
pub struct Output {
    pub stdout: String,
    pub code: u8,
}

fn exit_code(err: &McpError) -> u8 {
    match err {
        McpError::UrlNotAllowed(_)
        | McpError::Validation(_)
        | McpError::InvalidArguments(_)
        | McpError::ToolNotFound(_) => EXIT_BAD_INPUT,
        McpError::NeedsAuthorization
        | McpError::InsufficientScope(_)
        | McpError::Authorization(_) => EXIT_NEEDS_AUTHORIZATION,
        _ => EXIT_SERVER,
    }
}

/// `(exit code, message)` for a failure.
pub type Failure = (u8, String);

fn fail(err: McpError) -> Failure {
    (exit_code(&err), format!("{} ({})", err, err.code()))
}

fn setup(config: &Config, url: &str) -> Result<(McpClient, Url, ssrf::Policy), Failure> {
    let m = &config.connectors.mcp;
    let policy = ssrf::Policy {
        allow_loopback: m.allow_loopback,
        allow_private: m.allow_private,
        require_https: config.app_env == AppEnv::Production,
    };
    let url = Url::parse(url).map_err(|_| {
        (
            EXIT_BAD_INPUT,
            "the URL must be an absolute http(s) URL".to_owned(),
        )
    })?;
    ssrf::check_url(policy, &url).map_err(|e| fail(McpError::UrlNotAllowed(e.to_string())))?;
    let client = McpClient::new(m, policy, Arc::new(SystemClock))
        .map_err(|e| (EXIT_SERVER, format!("building the HTTP client: {e}")))?;
    Ok((client, url, policy))
}

/// How long `--oauth` waits for the browser's redirect.
const OAUTH_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// The token to use: `--bearer`, or one obtained with `--oauth`, or none.
async fn credential(
    client: &McpClient,
    policy: ssrf::Policy,
    url: &Url,
    bearer: Option<String>,
    oauth: bool,
) -> Result<Option<Plain>, Failure> {
    match (bearer, oauth) {
        (Some(b), _) => Ok(Some(Plain::new(b))),
        (None, true) => loopback_authorization(client, policy, url).await.map(Some),
        (None, false) => Ok(None),
    }
}

async fn loopback_authorization(
    client: &McpClient,
    policy: ssrf::Policy,
    url: &Url,
) -> Result<Plain, Failure> {
    let net = Net {
        http: client.http(),
        policy,
        limits: client.limits(),
    };
    let challenge = auth::challenge(&net, url).await.map_err(fail)?;
    let found = auth::discover(&net, url, challenge.as_ref())
        .await
        .map_err(fail)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| (EXIT_SERVER, format!("listening on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| (EXIT_SERVER, format!("listening on 127.0.0.1: {e}")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let registered = auth::register(&net, &found.server, &redirect_uri, true)
        .await
        .map_err(fail)?;
    let state = oauth::new_state();
    let verifier = oauth::new_verifier();
    let open = auth::authorize_url(
        &found.server,
        &registered.client_id,
        &redirect_uri,
        &state,
        &verifier,
        &found.scopes,
        &found.resource,
    );
    eprintln!("Open this URL in a browser to authorize switchboard:\n{open}");
    let query = tokio::time::timeout(OAUTH_WAIT, wait_for_redirect(&listener))
        .await
        .map_err(|_| {
            (
                EXIT_NEEDS_AUTHORIZATION,
                "no authorization arrived in time".to_owned(),
            )
        })?
        .map_err(|e| (EXIT_SERVER, format!("reading the redirect: {e}")))?;
    let get = |k: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    let refused = |why: &str| (EXIT_NEEDS_AUTHORIZATION, why.to_owned());
    if !get("state").is_some_and(|s| constant_time_eq(s.as_bytes(), state.expose().as_bytes())) {
        return Err(refused(
            "the redirect's state does not match; nothing was used",
        ));
    }
    if get("iss").is_some_and(|i| i != found.server.issuer) {
        return Err(refused(
            "the redirect's iss is not the authorization server's",
        ));
    }
    if let Some(error) = get("error") {
        return Err(refused(&format!(
            "authorization refused: {}",
            oauth::sanitize_code(&error)
        )));
    }
    let code = get("code").ok_or_else(|| refused("the redirect carries no code"))?;
    let tokens = auth::token(
        &net,
        &found.server.token_endpoint,
        &registered,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", verifier.expose()),
            ("resource", &found.resource),
        ],
    )
    .await
    .map_err(|e| match e {
        auth::TokenFailure::InvalidGrant => refused("the authorization code was refused"),
        auth::TokenFailure::Other(e) => fail(e),
    })?;
    eprintln!("Authorized.");
    Ok(tokens.access_token)
}

/// Serves the loopback redirect: answers `GET /callback?…` and returns its query; anything
/// else (a favicon) gets 404 and the wait goes on.
async fn wait_for_redirect(listener: &tokio::net::TcpListener) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/callback" {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let body =
            "switchboard: the authorization reached the terminal; you can close this window.\n";
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        return Ok(query.to_owned());
    }
}

/// `mcp tools URL`: every tool, as JSON (`{era, protocol_version, tools:[…]}`).
pub async fn tools(
    config: &Config,
    url: &str,
    bearer: Option<String>,
    oauth: bool,
) -> Result<Output, Failure> {
    let (client, url, policy) = setup(config, url)?;
    let bearer = credential(&client, policy, &url, bearer, oauth).await?;
    let key = url.to_string();
    let target = Target {
        key: &key,
        url: &url,
        bearer: bearer.as_ref(),
    };
    let list = client.list_tools(&target).await.map_err(fail)?;
    let known = client.known(&key);
    let tools: Vec<ToolView> = list
        .tools
        .iter()
        .filter_map(|t| ToolView::new("cli", t))
        .collect();
    let body = json!({
        "era": known.as_ref().map(|k| k.era),
        "protocol_version": known.as_ref().map(|k| k.version.clone()),
        "tools": tools.iter().map(|t| json!({
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "inputSchema": t.input_schema,
        })).collect::<Vec<_>>(),
    });
    Ok(Output {
        stdout: serde_json::to_string_pretty(&body).unwrap_or_default(),
        code: 0,
    })
}

/// `mcp call URL TOOL JSON`: the result (`{content, structuredContent?, isError}`) as JSON;
/// exit 1 when `isError`.
pub async fn call(
    config: &Config,
    url: &str,
    tool: &str,
    arguments: &str,
    bearer: Option<String>,
    oauth: bool,
) -> Result<Output, Failure> {
    let arguments: Value = serde_json::from_str(arguments).map_err(|e| {
        (
            EXIT_BAD_INPUT,
            format!("the arguments are not valid JSON: {e}"),
        )
    })?;
    if !arguments.is_object() {
        return Err((
            EXIT_BAD_INPUT,
            "the arguments must be a JSON object".to_owned(),
        ));
    }
    let (client, url, policy) = setup(config, url)?;
    let bearer = credential(&client, policy, &url, bearer, oauth).await?;
    let key = url.to_string();
    let target = Target {
        key: &key,
        url: &url,
        bearer: bearer.as_ref(),
    };
    let list = client.list_tools(&target).await.map_err(fail)?;
    let definition = list
        .find(tool)
        .ok_or_else(|| fail(McpError::ToolNotFound(tool.to_owned())))?;
    let result = client
        .call_tool(&target, definition, arguments)
        .await
        .map_err(fail)?;
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Output {
        stdout: serde_json::to_string_pretty(&result).unwrap_or_default(),
        code: if is_error { EXIT_TOOL_ERROR } else { 0 },
    })
}
