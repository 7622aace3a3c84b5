//! The tools a run offers the model (the owner's MCP tools, fixed when the run starts), their
//! execution through the MCP client with the owner's credentials, and MCP results mapped to
//! `tool_result` content (spec §4.3 table).

use crate::connectors::Ctx;
use crate::connectors::mcp::service;
use crate::db::ids::UserId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One tool as offered: `name` is the model-safe namespaced name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolEntry {
    pub name: String,
    pub server_id: String,
    pub tool: String,
    pub description: Option<String>,
    pub input_schema: Value,
    /// Reached through this provider connection (no server row of the owner's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<super::models::ToolConnection>,
    /// The server says the tool changes nothing (`readOnlyHint`), so calling it again is
    /// harmless: the step asking for it needs no WAL flush before it runs
    /// ([`super::store::Commit`]). A server that lies about it harms only its own user, and
    /// only if PostgreSQL crashes in the moment before the flush.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// The owner's tools, narrowed to `filter` (server ids or names, tool names or namespaced
/// names) when given. Servers that cannot list their tools are left out (and logged).
pub async fn table(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    filter: Option<&[String]>,
) -> Result<Vec<ToolEntry>, String> {
    let (tools, failures) = service::all_tools(ctx, owner)
        .await
        .map_err(|e| e.to_string())?;
    for f in &failures {
        tracing::warn!(server_id = %f.server_id, code = %f.code, "an MCP server's tools are left out of an agent run");
    }
    let names: Vec<(String, String)> = match filter {
        Some(_) => service::list(ctx, owner)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect(),
        None => Vec::new(),
    };
    Ok(tools
        .into_iter()
        .filter(|t| match filter {
            None => true,
            Some(f) => f.iter().any(|want| {
                *want == t.server_id
                    || *want == t.name
                    || *want == t.namespaced_name
                    || names.iter().any(|(id, n)| *id == t.server_id && n == want)
            }),
        })
        .map(|t| ToolEntry {
            read_only: t.read_only(),
            name: t.namespaced_name,
            server_id: t.server_id,
            tool: t.name,
            description: t.description.or(t.title),
            input_schema: t.input_schema,
            connection: None,
        })
        .collect())
}

/// The tools of a provider connection's catalog MCP server (a Linear agent session: its
/// workspace's Linear MCP server, with the session's connection token), and nothing else. A
/// server that cannot list its tools leaves the run without tools (and is logged), as in
/// [`table`].
pub async fn table_for_connection(
    ctx: &Arc<Ctx>,
    c: &super::models::ToolConnection,
) -> Result<Vec<ToolEntry>, String> {
    let tools = match service::connection_tools(ctx, &c.provider, &c.connection_id).await {
        Ok(tools) => tools,
        Err(e) => {
            tracing::warn!(provider = %c.provider, connection_id = %c.connection_id, code = %e.code(), "the connection's MCP tools are left out of an agent run");
            Vec::new()
        }
    };
    Ok(tools
        .into_iter()
        .map(|t| ToolEntry {
            read_only: t.read_only(),
            name: t.namespaced_name,
            server_id: t.server_id,
            tool: t.name,
            description: t.description.or(t.title),
            input_schema: t.input_schema,
            connection: Some(c.clone()),
        })
        .collect())
}

/// The `tools` of a Messages request.
pub fn for_model(table: &[ToolEntry]) -> Vec<Value> {
    table
        .iter()
        .map(|t| {
            let mut schema = t.input_schema.clone();
            if let Some(obj) = schema.as_object_mut() {
                obj.remove("$schema");
                obj.entry("type").or_insert_with(|| json!("object"));
            }
            let mut v = json!({ "name": t.name, "input_schema": schema });
            if let Some(d) = &t.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect()
}

/// A tool call's outcome as the model will see it.
pub struct Outcome {
    pub is_error: bool,
    pub content: Vec<Value>,
    pub duration_ms: i32,
}

pub async fn execute(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    entry: Option<&ToolEntry>,
    name: &str,
    input: Value,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let ms = || i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let Some(entry) = entry else {
        return Outcome {
            is_error: true,
            content: vec![text(format!("There is no tool named {name:?}."))],
            duration_ms: 0,
        };
    };
    let call = async {
        match &entry.connection {
            Some(c) => {
                service::call_with_connection(
                    ctx,
                    owner,
                    &c.provider,
                    &c.connection_id,
                    &entry.tool,
                    input,
                )
                .await
            }
            None => service::call(ctx, owner, &entry.server_id, &entry.tool, input).await,
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Outcome {
            is_error: true,
            content: vec![text(format!(
                "The tool did not answer within {} s.",
                timeout.as_secs()
            ))],
            duration_ms: ms(),
        },
        // JSON-RPC errors, bad arguments, an unreachable server: the model can often correct.
        Ok(Err(e)) => Outcome {
            is_error: true,
            content: vec![text(e.to_string())],
            duration_ms: ms(),
        },
        Ok(Ok(out)) => {
            let (is_error, content) = map_result(&out.result);
            Outcome {
                is_error,
                content,
                duration_ms: ms(),
            }
        }
    }
}

pub fn text(s: impl Into<String>) -> Value {
    json!({ "type": "text", "text": s.into() })
}

/// MCP `CallToolResult` → `tool_result` content blocks and `is_error`.
pub fn map_result(result: &Value) -> (bool, Vec<Value>) {
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out = Vec::new();
    for item in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
        match s("type") {
            "text" => out.push(text(s("text"))),
            "image" => out.push(json!({
                "type": "image",
                "source": { "type": "base64", "media_type": s("mimeType"), "data": s("data") },
            })),
            "resource_link" => out.push(text(format!(
                "Resource link: {} ({}{})",
                s("uri"),
                s("name"),
                item.get("mimeType")
                    .and_then(Value::as_str)
                    .map(|m| format!(", {m}"))
                    .unwrap_or_default()
            ))),
            "resource" => {
                let r = item.get("resource").cloned().unwrap_or(Value::Null);
                let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
                match r.get("text").and_then(Value::as_str) {
                    Some(t) => out.push(text(format!("Resource {uri}:\n{t}"))),
                    None => out.push(text(format!(
                        "Resource {uri} (binary, {})",
                        r.get("mimeType")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown type")
                    ))),
                }
            }
            "audio" => out.push(text(format!("[audio, {}]", s("mimeType")))),
            other => out.push(text(format!("[unsupported content: {other}]"))),
        }
    }
    if let Some(sc) = result.get("structuredContent")
        && !sc.is_null()
    {
        out.push(text(sc.to_string()));
    }
    if out.is_empty() {
        out.push(text(if is_error {
            "The tool failed."
        } else {
            "(no output)"
        }));
    }
    (is_error, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_results_map_per_the_table() {
        let (err, c) = map_result(&json!({
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "AAA=", "mimeType": "image/png"},
                {"type": "resource_link", "uri": "file:///a", "name": "a"},
                {"type": "resource", "resource": {"uri": "file:///b", "text": "body"}},
            ],
            "structuredContent": {"x": 1},
        }));
        assert!(!err);
        assert_eq!(c[0], json!({"type": "text", "text": "hi"}));
        assert_eq!(c[1]["source"]["type"], "base64");
        assert_eq!(c[1]["source"]["media_type"], "image/png");
        assert!(c[2]["text"].as_str().unwrap().contains("file:///a"));
        assert!(c[3]["text"].as_str().unwrap().contains("body"));
        assert_eq!(c[4]["text"], "{\"x\":1}");
        let (err, c) = map_result(&json!({"isError": true, "content": []}));
        assert!(err);
        assert_eq!(c.len(), 1);
    }
}
