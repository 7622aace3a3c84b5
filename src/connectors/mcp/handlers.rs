//! `POST|GET /api/mcp-servers`, `GET|DELETE /api/mcp-servers/{id}`,
//! `GET /api/mcp-servers/{id}/tools`, `POST /api/mcp-servers/{id}/tools/{name}/call`,
//! `GET /api/tools`. Thin: extract, call the service, map the result.

use super::error::McpError;
use super::models::{ServerView, ToolView};
use super::service::{self, NewServer, ServerFailure};
use crate::connectors::ConnectorsState;
use crate::connectors::vault::Plain;
use crate::trust::Caller;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddServerBody {
    /// The MCP endpoint (Streamable HTTP), e.g. `https://mcp.example.com/mcp`.
    url: Option<String>,
    name: Option<String>,
    /// A built-in catalog entry instead of a URL: `linear` or `github`. The provider
    /// connection's token is used when the caller has one.
    provider: Option<String>,
    /// A static bearer token (e.g. an API key) the server accepts; stored sealed, never shown.
    bearer: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ServerList {
    servers: Vec<ServerView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ToolList {
    tools: Vec<ToolView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AllTools {
    tools: Vec<ToolView>,
    /// Servers whose tools could not be listed this time.
    unavailable: Vec<ServerFailure>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallBody {
    /// The tool's arguments; checked against its `inputSchema` before anything is sent.
    #[serde(default)]
    #[schema(value_type = Object)]
    arguments: Value,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CallResult {
    /// Content blocks (`text`, `image`, `audio`, `resource_link`, `resource`).
    #[schema(value_type = Vec<Object>)]
    content: Value,
    #[serde(rename = "structuredContent", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    structured_content: Option<Value>,
    /// The tool ran and failed (its content explains); not a protocol error.
    #[serde(rename = "isError")]
    is_error: bool,
    /// Time spent waiting for the MCP server, in milliseconds.
    duration_ms: i32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct McpDeleted {
    id: String,
    deleted: bool,
}

/// Adds an MCP server for the caller. The URL is checked by the SSRF guard (also on the
/// resolved address), the server is probed for its era, and a 401 is reported as
/// `needs_authorization`.
#[utoipa::path(post, path = "/api/mcp-servers", tag = "mcp", operation_id = "add_mcp_server",
    security(("bearer" = [])),
    request_body = AddServerBody,
    responses(
        (status = 201, description = "Added", body = ServerView),
        (status = 400, description = "Bad or refused URL (URL_NOT_ALLOWED)", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 409, description = "Already added, or the limit is reached", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The server did not answer as an MCP server", body = crate::platform::error::ErrorBody),
        (status = 504, description = "The server did not answer in time", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn add(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    body: web::Json<AddServerBody>,
) -> Result<HttpResponse, McpError> {
    let body = body.into_inner();
    let view = service::add(
        &state.ctx,
        &caller.id,
        NewServer {
            url: body.url,
            name: body.name,
            provider: body.provider,
            bearer: body.bearer.filter(|b| !b.is_empty()).map(Plain::new),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// The caller's MCP servers, oldest first.
#[utoipa::path(get, path = "/api/mcp-servers", tag = "mcp", operation_id = "list_mcp_servers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's MCP servers", body = ServerList),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn list(
    caller: Caller,
    state: web::Data<ConnectorsState>,
) -> Result<HttpResponse, McpError> {
    let servers = service::list(&state.ctx, &caller.id).await?;
    Ok(HttpResponse::Ok().json(ServerList { servers }))
}

/// One of the caller's MCP servers; another user's is a 404.
#[utoipa::path(get, path = "/api/mcp-servers/{id}", tag = "mcp", operation_id = "get_mcp_server",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "MCP server id")),
    responses(
        (status = 200, description = "The server", body = ServerView),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such server of the caller's", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn get(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, McpError> {
    Ok(HttpResponse::Ok().json(service::get(&state.ctx, &caller.id, &id).await?))
}

/// Removes the server and its stored credentials (tool-call records stay).
#[utoipa::path(delete, path = "/api/mcp-servers/{id}", tag = "mcp", operation_id = "delete_mcp_server",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "MCP server id")),
    responses(
        (status = 200, description = "Deleted", body = McpDeleted),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such server of the caller's", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn delete(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, McpError> {
    let id = id.into_inner();
    service::delete(&state.ctx, &caller.id, &id).await?;
    Ok(HttpResponse::Ok().json(McpDeleted { id, deleted: true }))
}

/// The server's tools (every page), cached for the server's `ttlMs`.
#[utoipa::path(get, path = "/api/mcp-servers/{id}/tools", tag = "mcp", operation_id = "list_mcp_server_tools",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "MCP server id")),
    responses(
        (status = 200, description = "The server's tools", body = ToolList),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such server of the caller's", body = crate::platform::error::ErrorBody),
        (status = 409, description = "The server needs authorization", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The server failed", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn tools(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, McpError> {
    let tools = service::tools(&state.ctx, &caller.id, &id).await?;
    Ok(HttpResponse::Ok().json(ToolList { tools }))
}

/// Every tool the caller can reach, namespaced by server (`^[a-zA-Z0-9_-]{1,64}$`).
#[utoipa::path(get, path = "/api/tools", tag = "mcp", operation_id = "list_tools",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "All tools, and the servers that failed", body = AllTools),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn all_tools(
    caller: Caller,
    state: web::Data<ConnectorsState>,
) -> Result<HttpResponse, McpError> {
    let (tools, unavailable) = service::all_tools(&state.ctx, &caller.id).await?;
    Ok(HttpResponse::Ok().json(AllTools { tools, unavailable }))
}

/// Calls a tool with `arguments`, validated against its `inputSchema` first. A tool that ran
/// and failed is a 200 with `isError: true`; protocol failures are JSON errors.
#[utoipa::path(post, path = "/api/mcp-servers/{id}/tools/{name}/call", tag = "mcp", operation_id = "call_mcp_server_tool",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "MCP server id"),
           ("name" = String, Path, description = "The tool's name on its server")),
    request_body = CallBody,
    responses(
        (status = 200, description = "The tool's result", body = CallResult),
        (status = 400, description = "Arguments do not match the input schema (nothing was sent)", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such server of the caller's, or no such tool", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The server failed or answered too much; MCP_CALL_OUTCOME_UNKNOWN: the connection closed after the call was sent and the tool is not idempotent, so it was not sent again", body = crate::platform::error::ErrorBody),
        (status = 504, description = "The server did not answer in time", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn call(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    path: web::Path<(String, String)>,
    body: web::Json<CallBody>,
) -> Result<HttpResponse, McpError> {
    let started = std::time::Instant::now();
    let (id, name) = path.into_inner();
    let (out, upstream) = super::transport::upstream_timed(service::call(
        &state.ctx,
        &caller.id,
        &id,
        &name,
        body.into_inner().arguments,
    ))
    .await;
    let out = out?;
    let mut r = out.result;
    // The MCP server's share of this call, so a client can tell it from switchboard's own; `own`
    // is the handler's time minus that share (measured from the handler's start, so the bearer
    // check and body parsing before it are not in it; the client's total minus `upstream` is).
    let own = started.elapsed().saturating_sub(upstream);
    let timing = format!(
        "upstream;dur={:.3}, own;dur={:.3}",
        upstream.as_secs_f64() * 1000.0,
        own.as_secs_f64() * 1000.0
    );
    Ok(HttpResponse::Ok()
        .insert_header(("Server-Timing", timing))
        .json(CallResult {
            // Moved out of the result, not copied.
            is_error: r.get("isError").and_then(Value::as_bool).unwrap_or(false),
            content: r
                .get_mut("content")
                .map(Value::take)
                .unwrap_or_else(|| Value::Array(vec![])),
            structured_content: r.get_mut("structuredContent").map(Value::take),
            duration_ms: out.duration_ms,
        }))
}

/// Calls a tool by its namespaced name from `GET /api/tools`.
#[utoipa::path(post, path = "/api/tools/{name}/call", tag = "mcp", operation_id = "call_tool",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Namespaced tool name from GET /api/tools")),
    request_body = CallBody,
    responses(
        (status = 200, description = "The tool's result", body = CallResult),
        (status = 400, description = "Arguments do not match the input schema (nothing was sent)", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such tool among the caller's servers", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The server failed", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn call_namespaced(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    name: web::Path<String>,
    body: web::Json<CallBody>,
) -> Result<HttpResponse, McpError> {
    let (id, tool) = service::resolve(&state.ctx, &caller.id, &name).await?;
    call(caller, state, web::Path::from((id, tool)), body).await
}
