//! The MCP servers and tools a user can use: adding (SSRF-checked, era probed), listing,
//! deleting, listing tools and calling them (recorded). No actix types here.

use super::client::{Target, ToolList};
use super::error::McpError;
use super::models::{CallRecord, CredentialRow, ServerRow, ServerView, ToolView};
use super::{names, store};
use crate::connectors::models::ConnectionId;
use crate::connectors::vault::{Field, Plain};
use crate::connectors::{Ctx, refresh};
use crate::db;
use crate::db::ids::UserId;
use crate::platform::config::AppEnv;
use crate::platform::ssrf;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use url::Url;
use utoipa::ToSchema;

/// What `POST /api/mcp-servers` asks for: a URL of the user's, or a catalog provider.
pub struct NewServer {
    pub url: Option<String>,
    pub name: Option<String>,
    pub provider: Option<String>,
    /// A static bearer token (e.g. an API key) the server accepts; stored sealed.
    pub bearer: Option<Plain>,
}

/// The guard's policy from config: https only in production.
pub fn policy(ctx: &Ctx) -> ssrf::Policy {
    let m = &ctx.config.connectors.mcp;
    ssrf::Policy {
        allow_loopback: m.allow_loopback,
        allow_private: m.allow_private,
        require_https: ctx.config.app_env == AppEnv::Production,
    }
}

/// Parses and checks a URL a user (or discovery) gave: http(s), no userinfo or fragment, and
/// an allowed literal host. Names are checked again on the resolved address at connect time.
pub fn checked_url(ctx: &Ctx, raw: &str) -> Result<Url, McpError> {
    let url = Url::parse(raw.trim())
        .map_err(|_| McpError::Validation("url must be an absolute http(s) URL".into()))?;
    if url.fragment().is_some() {
        return Err(McpError::Validation("url must not carry a fragment".into()));
    }
    ssrf::check_url(policy(ctx), &url).map_err(|e| McpError::UrlNotAllowed(e.to_string()))?;
    Ok(url)
}

fn catalog_url(ctx: &Ctx, provider: &str) -> Option<String> {
    let p = &ctx.config.connectors.providers;
    match provider {
        "linear" => p.linear.mcp_url.clone(),
        "github" => p.github.mcp_url.clone(),
        _ => None,
    }
}

pub async fn add(ctx: &Arc<Ctx>, owner: &UserId, new: NewServer) -> Result<ServerView, McpError> {
    let (raw_url, provider) = match (new.url.as_deref(), new.provider.as_deref()) {
        (Some(u), None) => (u.to_owned(), None),
        (None, Some(p)) => (
            catalog_url(ctx, p).ok_or_else(|| {
                McpError::Validation(format!("no MCP server is configured for provider {p:?}"))
            })?,
            Some(p.to_owned()),
        ),
        _ => {
            return Err(McpError::Validation(
                "give either url or provider".to_owned(),
            ));
        }
    };
    if raw_url.len() > 2048 {
        return Err(McpError::Validation("url is too long".into()));
    }
    let url = checked_url(ctx, &raw_url)?;
    let name = match new.name.as_deref().map(str::trim) {
        Some(n) if n.is_empty() || n.chars().count() > 100 => {
            return Err(McpError::Validation(
                "name must be 1 to 100 characters".into(),
            ));
        }
        Some(n) => n.to_owned(),
        None => provider
            .clone()
            .or_else(|| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "MCP server".to_owned()),
    };
    let limit = i64::from(ctx.config.connectors.mcp.max_servers_per_user);
    let (o, p, u) = (owner.to_owned(), provider.clone(), url.to_string());
    let (count, taken, connection_id) = db::query(&ctx.pool, move |c| {
        let count = store::count_for_owner(c, &o)?;
        let taken = store::url_taken(c, &o, &u)?;
        let conn_id = match &p {
            Some(p) => store::active_connection(c, &o, p)?,
            None => None,
        };
        Ok((count, taken, conn_id))
    })
    .await
    .map_err(McpError::from)?;
    if taken {
        return Err(McpError::Duplicate);
    }
    if count >= limit {
        return Err(McpError::TooMany);
    }

    let id = format!("mcp_{}", crate::crypto::random::id());
    let bearer = match (&new.bearer, &connection_id) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(conn)) => Some(refresh::access_token(ctx, &ConnectionId(conn.clone())).await?),
        (None, None) => None,
    };
    // The server must answer (or ask for authorization) before it is kept.
    let probe = ctx
        .mcp
        .probe(&Target {
            key: &id,
            url: &url,
            bearer: bearer.as_ref(),
        })
        .await?;
    let now = ctx.clock.now();
    let row = ServerRow {
        id: id.clone(),
        owner_id: owner.to_owned(),
        name,
        url: url.to_string(),
        provider,
        connection_id,
        era: probe.known.as_ref().map(|k| k.era.as_str().to_owned()),
        protocol_version: probe.known.as_ref().map(|k| k.version.clone()),
        needs_authorization: probe.needs_authorization,
        server_info: probe.known.as_ref().and_then(|k| k.server_info.clone()),
        created_at: now,
        updated_at: now,
    };
    let credential = match &new.bearer {
        Some(b) => Some(CredentialRow::bearer(
            &id,
            ctx.vault.seal(Field::McpAccessToken, &id, b)?,
            now,
        )),
        None => None,
    };
    let has_credentials = credential.is_some();
    let stored = row.clone();
    let result = db::query(&ctx.pool, move |c| {
        store::insert(c, &stored, credential.as_ref())
    })
    .await
    .map_err(McpError::from);
    if let Err(e) = result {
        ctx.mcp.forget(&id);
        return Err(e);
    }
    tracing::info!(server_id = %id, era = ?row.era, needs_authorization = row.needs_authorization, "MCP server added");
    Ok(ServerView::new(row, has_credentials))
}

pub async fn list(ctx: &Arc<Ctx>, owner: &UserId) -> Result<Vec<ServerView>, McpError> {
    let owner = owner.to_owned();
    let (rows, with_creds) = db::query(&ctx.pool, move |c| {
        let rows = store::list_for_owner(c, &owner)?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let creds = store::with_credentials(c, &ids)?;
        Ok((rows, creds))
    })
    .await
    .map_err(McpError::from)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let has = with_creds.contains(&r.id);
            ServerView::new(r, has)
        })
        .collect())
}

pub async fn get(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<ServerView, McpError> {
    let (row, has) = find(ctx, owner, id).await?;
    Ok(ServerView::new(row, has))
}

async fn find(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<(ServerRow, bool), McpError> {
    let (owner, id) = (owner.to_owned(), id.to_owned());
    db::query(&ctx.pool, move |c| {
        let row = store::find_for_owner(c, &id, &owner)?;
        let has = match &row {
            Some(_) => store::credential(c, &id)?.is_some(),
            None => false,
        };
        Ok(row.map(|r| (r, has)))
    })
    .await
    .map_err(McpError::from)?
    .ok_or(McpError::ServerNotFound)
}

pub async fn delete(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<(), McpError> {
    let (o, i) = (owner.to_owned(), id.to_owned());
    let deleted = db::query(&ctx.pool, move |c| store::delete_for_owner(c, &i, &o))
        .await
        .map_err(McpError::from)?;
    if deleted == 0 {
        return Err(McpError::ServerNotFound);
    }
    ctx.mcp.forget(id);
    tracing::info!(server_id = %id, "MCP server deleted");
    Ok(())
}

/// The server's row and the token to present to it: its own sealed credential, else the
/// provider connection's (fresh) token, else none. Served from this process's short cache when
/// it can be (no database round trip, nothing unsealed), see `reach.rs`.
async fn reach(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    id: &str,
) -> Result<(ServerRow, Url, Option<Plain>), McpError> {
    let now = ctx.clock.now();
    let cache = ctx.mcp.reach_cache();
    if let Some(hit) = cache.get(id, owner, now) {
        return Ok((hit.row, hit.url, hit.bearer));
    }
    let generation = cache.generation();
    let (owner, sid) = (owner.to_owned(), id.to_owned());
    let (row, cred) = db::query(&ctx.pool, move |c| {
        let row = store::find_for_owner(c, &sid, &owner)?;
        let cred = match &row {
            Some(_) => store::credential(c, &sid)?,
            None => None,
        };
        Ok((row, cred))
    })
    .await
    .map_err(McpError::from)?;
    let row = row.ok_or(McpError::ServerNotFound)?;
    // Checked again on every read of the row: the guard's policy may have changed since it was
    // added (the config is fixed for the life of the process, so a cached check stays true).
    let url = checked_url(ctx, &row.url)?;
    let ttl = ctx.config.connectors.mcp.reach_cache_ttl_ms;
    let mut until = now + chrono::Duration::milliseconds(i64::try_from(ttl).unwrap_or(0));
    let bearer = match (cred, &row.connection_id) {
        (Some(cred), _) => {
            // Never past the point where the token would be refreshed.
            if let Some(at) = cred.expires_at {
                until = until.min(at - super::auth_flow::margin(ctx));
            }
            Some(super::auth_flow::bearer(ctx, cred).await?)
        }
        (None, Some(conn)) => Some(refresh::access_token(ctx, &ConnectionId(conn.clone())).await?),
        (None, None) => None,
    };
    if ttl > 0 {
        let reached = super::reach::Reached {
            row: row.clone(),
            url: url.clone(),
            bearer: bearer.clone(),
        };
        cache.put(generation, reached, until, now);
    }
    Ok((row, url, bearer))
}

async fn tools_of(
    ctx: &Arc<Ctx>,
    row: &ServerRow,
    url: &Url,
    bearer: Option<&Plain>,
) -> Result<Arc<ToolList>, McpError> {
    let list = ctx
        .mcp
        .list_tools(&Target {
            key: &row.id,
            url,
            bearer,
        })
        .await;
    let list = step_up(ctx, &row.id, list).await?;
    sync_era(ctx, row).await;
    Ok(list)
}

/// A 403 `insufficient_scope` is passed on, and its scopes are kept for the next authorization;
/// a 401 (the server no longer takes the credential) marks the server as needing authorization.
async fn step_up<T>(ctx: &Arc<Ctx>, id: &str, r: Result<T, McpError>) -> Result<T, McpError> {
    match &r {
        Err(McpError::InsufficientScope(scope)) => {
            super::auth_flow::note_step_up(ctx, id, scope).await;
        }
        Err(McpError::NeedsAuthorization) => {
            let (sid, now) = (id.to_owned(), ctx.clock.now());
            if let Err(e) = db::query(&ctx.pool, move |c| {
                store::mark_needs_authorization(c, &sid, now)
            })
            .await
            {
                tracing::warn!(error = %e, server_id = id, "marking an MCP server failed");
            }
            ctx.mcp.reach_cache().invalidate(id);
        }
        _ => {}
    }
    r
}

/// Records a re-detected era (or a server that now answers) on the row; best effort.
async fn sync_era(ctx: &Arc<Ctx>, row: &ServerRow) {
    let Some(known) = ctx.mcp.known(&row.id) else {
        return;
    };
    let era = known.era.as_str();
    if row.era.as_deref() == Some(era)
        && row.protocol_version.as_deref() == Some(known.version.as_str())
        && !row.needs_authorization
    {
        return;
    }
    let (id, version, now) = (row.id.clone(), known.version.clone(), ctx.clock.now());
    if let Err(e) = db::query(&ctx.pool, move |c| {
        store::set_era(c, &id, era, &version, now)
    })
    .await
    {
        tracing::warn!(error = %e, server_id = %row.id, "recording the MCP era failed");
    }
    ctx.mcp.reach_cache().invalidate(&row.id);
}

pub async fn tools(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<Vec<ToolView>, McpError> {
    let (row, url, bearer) = reach(ctx, owner, id).await?;
    let list = tools_of(ctx, &row, &url, bearer.as_ref()).await?;
    Ok(list
        .tools
        .iter()
        .filter_map(|t| ToolView::new(&row.id, t))
        .collect())
}

/// A server whose tools could not be listed, and why (the other servers' tools still come).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerFailure {
    pub server_id: String,
    pub code: String,
    pub message: String,
}

/// Every tool the caller can reach, across their servers.
pub async fn all_tools(
    ctx: &Arc<Ctx>,
    owner: &UserId,
) -> Result<(Vec<ToolView>, Vec<ServerFailure>), McpError> {
    let o = owner.to_owned();
    let rows = db::query(&ctx.pool, move |c| store::list_for_owner(c, &o))
        .await
        .map_err(McpError::from)?;
    let lists = futures_util::future::join_all(
        rows.iter()
            .map(|row| async move { (row.id.clone(), tools(ctx, owner, &row.id).await) }),
    )
    .await;
    let mut all = Vec::new();
    let mut failures = Vec::new();
    for (server_id, result) in lists {
        match result {
            Ok(mut tools) => all.append(&mut tools),
            Err(e) => failures.push(ServerFailure {
                server_id,
                code: e.code().to_owned(),
                message: e.to_string(),
            }),
        }
    }
    Ok((all, failures))
}

/// A provider's catalog MCP server reached with one connection's token and no server row
/// (a Linear agent session's run: its workspace's Linear MCP server, whichever servers the
/// owner added). Its tools are namespaced under the provider's name; `server_id` in call
/// records is `<provider>:<connection id>`.
async fn reach_connection(
    ctx: &Arc<Ctx>,
    provider: &str,
    connection_id: &str,
) -> Result<(String, Url, Plain), McpError> {
    let raw = catalog_url(ctx, provider).ok_or_else(|| {
        McpError::Validation(format!(
            "no MCP server is configured for provider {provider:?}"
        ))
    })?;
    let url = checked_url(ctx, &raw)?;
    let bearer = refresh::access_token(ctx, &ConnectionId(connection_id.to_owned())).await?;
    Ok((format!("{provider}:{connection_id}"), url, bearer))
}

/// The tools of a provider connection's catalog MCP server (see [`reach_connection`]).
pub async fn connection_tools(
    ctx: &Arc<Ctx>,
    provider: &str,
    connection_id: &str,
) -> Result<Vec<ToolView>, McpError> {
    let (key, url, bearer) = reach_connection(ctx, provider, connection_id).await?;
    let list = ctx
        .mcp
        .list_tools(&Target {
            key: &key,
            url: &url,
            bearer: Some(&bearer),
        })
        .await?;
    Ok(list
        .tools
        .iter()
        .filter_map(|t| ToolView::new(provider, t))
        .collect())
}

/// Calls a tool of a provider connection's catalog MCP server (see [`reach_connection`]).
pub async fn call_with_connection(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    provider: &str,
    connection_id: &str,
    tool: &str,
    arguments: Value,
) -> Result<CallOutcome, McpError> {
    let (key, url, bearer) = reach_connection(ctx, provider, connection_id).await?;
    let target = Target {
        key: &key,
        url: &url,
        bearer: Some(&bearer),
    };
    let list = ctx.mcp.list_tools(&target).await?;
    call_listed(ctx, owner, &key, false, &target, &list, tool, arguments).await
}

/// Resolves a namespaced name (`GET /api/tools`) back to its server and tool.
pub async fn resolve(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    namespaced: &str,
) -> Result<(String, String), McpError> {
    let parsed =
        names::parse(namespaced).ok_or_else(|| McpError::ToolNotFound(namespaced.into()))?;
    let key = match &parsed {
        names::Parsed::Exact { key, .. } | names::Parsed::Hashed { key } => key.clone(),
    };
    let servers = list(ctx, owner).await?;
    for server in servers.iter().filter(|s| names::server_key(&s.id) == key) {
        if let names::Parsed::Exact { tool, .. } = &parsed {
            return Ok((server.id.clone(), tool.clone()));
        }
        let tools = tools(ctx, owner, &server.id).await?;
        if let Some(t) = tools.iter().find(|t| t.namespaced_name == namespaced) {
            return Ok((server.id.clone(), t.name.clone()));
        }
    }
    Err(McpError::ToolNotFound(namespaced.into()))
}

/// A tool call's outcome and how long the MCP server part took.
pub struct CallOutcome {
    pub result: Value,
    pub duration_ms: i32,
}

/// Calls a tool (arguments checked against its schema before sending) and records the call.
pub async fn call(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    id: &str,
    tool: &str,
    arguments: Value,
) -> Result<CallOutcome, McpError> {
    let (row, url, bearer) = reach(ctx, owner, id).await?;
    let list = tools_of(ctx, &row, &url, bearer.as_ref()).await?;
    let target = Target {
        key: &row.id,
        url: &url,
        bearer: bearer.as_ref(),
    };
    call_listed(ctx, owner, &row.id, true, &target, &list, tool, arguments).await
}

/// Calls `tool` of a listed server and records the call (`server_id` names it in the record);
/// `stored`: the server has a row (a 401/403 is noted on it).
#[expect(clippy::too_many_arguments, reason = "the call and where it goes")]
async fn call_listed(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    server_id: &str,
    stored: bool,
    target: &Target<'_>,
    list: &ToolList,
    tool: &str,
    arguments: Value,
) -> Result<CallOutcome, McpError> {
    // Borrowed from the cached list: a call copies no tool definition (schemas can be large).
    let definition = list
        .find(tool)
        .ok_or_else(|| McpError::ToolNotFound(tool.to_owned()))?;
    let started_at = ctx.clock.now();
    let started = Instant::now();
    let record_payloads = ctx.config.connectors.mcp.record_payloads;
    let args_copy = record_payloads.then(|| arguments.clone());
    let outcome = ctx.mcp.call_tool(target, definition, arguments).await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let outcome = if stored {
        step_up(ctx, server_id, outcome).await
    } else {
        outcome
    };
    let is_error = outcome
        .as_ref()
        .ok()
        .and_then(|r| r.get("isError"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let record = CallRecord {
        owner_id: owner.to_owned(),
        server_id: server_id.to_owned(),
        tool: tool.to_owned(),
        started_at,
        duration_ms,
        ok: outcome.is_ok() && !is_error,
        error: match &outcome {
            Ok(_) if is_error => Some("TOOL_ERROR".to_owned()),
            Ok(_) => None,
            Err(e) => Some(e.code().to_owned()),
        },
        arguments: args_copy,
        result: if record_payloads {
            outcome.as_ref().ok().cloned()
        } else {
            None
        },
    };
    ctx.mcp_calls.record(record).await;
    tracing::info!(
        server_id,
        tool,
        duration_ms,
        ok = outcome.is_ok() && !is_error,
        "MCP tool call"
    );
    Ok(CallOutcome {
        result: outcome?,
        duration_ms,
    })
}
