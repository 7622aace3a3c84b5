//! `switchboard mcp tools URL` and `switchboard mcp call URL TOOL JSON`: the operator's view of
//! an MCP server through the same client (era detection, SSRF guard, schema check, limits).
//! Nothing is written to the database. Exit codes a script can rely on:
//! 0 success, 1 the tool ran and reported `isError`, 2 bad input (URL refused, bad JSON,
//! arguments not matching the schema, unknown tool), 3 the server needs authorization,
//! 4 the server failed or could not be reached.

use super::client::{McpClient, Target};
use super::error::McpError;
use super::models::ToolView;
use crate::connectors::vault::Plain;
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
        McpError::NeedsAuthorization => EXIT_NEEDS_AUTHORIZATION,
        _ => EXIT_SERVER,
    }
}

/// `(exit code, message)` for a failure.
pub type Failure = (u8, String);

fn fail(err: McpError) -> Failure {
    (exit_code(&err), format!("{} ({})", err, err.code()))
}

fn setup(config: &Config, url: &str) -> Result<(McpClient, Url), Failure> {
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
    Ok((client, url))
}

/// `mcp tools URL`: every tool, as JSON (`{era, protocol_version, tools:[…]}`).
pub async fn tools(config: &Config, url: &str, bearer: Option<String>) -> Result<Output, Failure> {
    let (client, url) = setup(config, url)?;
    let bearer = bearer.map(Plain::new);
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
    let (client, url) = setup(config, url)?;
    let bearer = bearer.map(Plain::new);
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
