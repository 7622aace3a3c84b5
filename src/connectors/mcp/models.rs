//! Rows of the MCP tables and the views clients see. A view never carries a credential.

use super::client::Era;
use crate::db::ids::UserId;
use crate::db::schema::{mcp_auth_flows, mcp_credentials, mcp_oauth_clients, mcp_servers};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mcp_servers, check_for_backend(diesel::pg::Pg))]
pub struct ServerRow {
    pub id: String,
    pub owner_id: UserId,
    pub name: String,
    pub url: String,
    pub provider: Option<String>,
    pub connection_id: Option<String>,
    pub era: Option<String>,
    pub protocol_version: Option<String>,
    pub needs_authorization: bool,
    pub server_info: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mcp_credentials, check_for_backend(diesel::pg::Pg))]
pub struct CredentialRow {
    pub server_id: String,
    pub issuer: Option<String>,
    /// Sealed (`vault::Field::McpAccessToken`), never plaintext.
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where (and as which client) an OAuth credential is refreshed; NULL for a static bearer.
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub resource: Option<String>,
    /// Scopes a server asked for in a 403 `insufficient_scope` (step-up), until re-authorized.
    pub wanted_scopes: Vec<Option<String>>,
    pub refresh_claim: Option<String>,
    pub refresh_claim_expires_at: Option<DateTime<Utc>>,
}

impl CredentialRow {
    /// A static bearer a user gave (no OAuth): nothing to refresh.
    pub fn bearer(server_id: &str, sealed: String, now: DateTime<Utc>) -> Self {
        Self {
            server_id: server_id.to_owned(),
            issuer: None,
            access_token: sealed,
            refresh_token: None,
            expires_at: None,
            scopes: Vec::new(),
            created_at: now,
            updated_at: now,
            token_endpoint: None,
            client_id: None,
            resource: None,
            wanted_scopes: Vec::new(),
            refresh_claim: None,
            refresh_claim_expires_at: None,
        }
    }

    pub fn scope_list(&self) -> Vec<String> {
        self.scopes.iter().flatten().cloned().collect()
    }
}

/// An MCP authorization in progress (single use, short-lived).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mcp_auth_flows, check_for_backend(diesel::pg::Pg))]
pub struct AuthFlowRow {
    pub state_hash: String,
    pub owner_id: UserId,
    pub server_id: String,
    pub issuer: String,
    pub token_endpoint: String,
    pub client_id: String,
    pub resource: String,
    pub scopes: Vec<Option<String>>,
    /// Sealed (`vault::Field::McpCodeVerifier`, bound to the state hash).
    pub code_verifier: String,
    pub redirect_to: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// How we are registered at one authorization server (dynamic registration).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mcp_oauth_clients, check_for_backend(diesel::pg::Pg))]
pub struct OAuthClientRow {
    pub issuer: String,
    pub redirect_uri: String,
    pub client_id: String,
    /// Sealed (`vault::Field::McpClientSecret`, bound to the issuer).
    pub client_secret: Option<String>,
    pub token_endpoint_auth_method: String,
    pub created_at: DateTime<Utc>,
}

/// A tool call as `mcp_tool_calls` records it ([`super::store::record_calls`]).
#[derive(Debug)]
pub struct CallRecord {
    pub owner_id: UserId,
    pub server_id: String,
    pub tool: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub ok: bool,
    pub error: Option<String>,
    pub arguments: Option<Value>,
    pub result: Option<Value>,
}

/// An MCP server as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerView {
    pub id: String,
    pub name: String,
    pub url: String,
    /// The catalog provider this entry belongs to (`linear`, `github`), if any.
    pub provider: Option<String>,
    /// Whether the provider connection's token is used for this server.
    pub uses_connection: bool,
    /// `modern` (2026-07-28) or `legacy` (session-based); null until detected.
    pub era: Option<Era>,
    pub protocol_version: Option<String>,
    /// The server answered 401: it needs the user's authorization first.
    pub needs_authorization: bool,
    /// Whether a credential (sealed) is stored for it.
    pub has_credentials: bool,
    #[schema(value_type = Option<Object>)]
    pub server_info: Option<Value>,
    pub created_at: DateTime<Utc>,
}

impl ServerView {
    pub fn new(row: ServerRow, has_credentials: bool) -> Self {
        Self {
            era: row.era.as_deref().and_then(Era::parse),
            uses_connection: row.connection_id.is_some(),
            id: row.id,
            name: row.name,
            url: row.url,
            provider: row.provider,
            protocol_version: row.protocol_version,
            needs_authorization: row.needs_authorization,
            has_credentials,
            server_info: row.server_info,
            created_at: row.created_at,
        }
    }
}

/// A tool as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ToolView {
    pub server_id: String,
    /// The tool's own name on its server (use it in `…/tools/{name}/call`).
    pub name: String,
    /// `<server key>__<tool>`, unique across the caller's servers, `^[a-zA-Z0-9_-]{1,64}$`.
    pub namespaced_name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub input_schema: Value,
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Hints from the server; untrusted.
    #[schema(value_type = Option<Object>)]
    pub annotations: Option<Value>,
}

impl ToolView {
    pub fn new(server_id: &str, tool: &Value) -> Option<Self> {
        let name = tool.get("name")?.as_str()?.to_owned();
        let text = |k: &str| tool.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            server_id: server_id.to_owned(),
            namespaced_name: super::names::namespaced(server_id, &name),
            name,
            title: text("title"),
            description: text("description"),
            input_schema: tool
                .get("inputSchema")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            output_schema: tool.get("outputSchema").cloned(),
            annotations: tool.get("annotations").cloned(),
        })
    }

    /// The server declares that the tool changes nothing (`readOnlyHint: true`).
    pub fn read_only(&self) -> bool {
        self.annotations
            .as_ref()
            .and_then(|a| a.get("readOnlyHint"))
            .and_then(Value::as_bool)
            == Some(true)
    }
}
