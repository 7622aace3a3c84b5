//! `POST|GET /api/agent-runs`, `GET /api/agent-runs/{id}`, `POST /api/agent-runs/{id}/cancel`,
//! `GET /api/agent-runs/{id}/events` (SSE).

use super::error::AgentsError;
use super::models::{EventRow, RunDetail, RunView};
use super::service::{self, NewRun};
use super::store;
use crate::connectors::ConnectorsState;
use crate::db;
use crate::trust::Caller;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    /// The user's request to the agent.
    prompt: String,
    /// Server ids or names, tool names or namespaced names: only these tools are offered
    /// (default: every tool of the caller's MCP servers).
    tools: Option<Vec<String>>,
    /// Default: `connectors.anthropic.model`.
    model: Option<String>,
    /// Most model calls (default `connectors.agents.default_max_turns`).
    max_turns: Option<u32>,
    /// Stop once the run's tokens (input + output + cache) reach this.
    max_tokens_budget: Option<u64>,
    system: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedBody {
    id: String,
    status: String,
}

/// Starts an agent run as a job; follow it with `GET …/{id}` or `…/{id}/events`.
#[utoipa::path(post, path = "/api/agent-runs", tag = "agents", operation_id = "create_agent_run",
    security(("bearer" = [])),
    request_body = CreateBody,
    responses(
        (status = 202, description = "Queued", body = CreatedBody),
        (status = 400, description = "Bad input", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 429, description = "Too many runs in progress or this hour; see Retry-After", body = crate::platform::error::ErrorBody),
        (status = 503, description = "No Anthropic API key is configured", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn create(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, AgentsError> {
    let b = body.into_inner();
    let row = service::create(
        &state.ctx,
        &caller.id,
        NewRun {
            prompt: b.prompt,
            system: b.system,
            tools: b.tools,
            model: b.model,
            max_turns: b.max_turns,
            max_tokens_budget: b.max_tokens_budget,
            connection: None,
            conversation: None,
        },
    )
    .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/api/agent-runs/{}", row.id)))
        .json(CreatedBody {
            id: row.id,
            status: row.status,
        }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// 1–200, default 50.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunList {
    runs: Vec<RunView>,
}

/// The caller's runs, newest first.
#[utoipa::path(get, path = "/api/agent-runs", tag = "agents", operation_id = "list_agent_runs",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The caller's runs", body = RunList),
        (status = 400, description = "Bad query", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn list(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AgentsError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AgentsError::Validation("limit must be 1 to 200".into()));
    }
    let runs = service::list(&state.ctx, &caller.id, limit).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(RunList { runs }))
}

/// A run: status, usage, final text and every step so far. Another user's run is a 404.
#[utoipa::path(get, path = "/api/agent-runs/{id}", tag = "agents", operation_id = "get_agent_run",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such run of the caller's", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn get(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AgentsError> {
    let detail = service::get(&state.ctx, &caller.id, &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(detail))
}

/// Cancels a run: a queued one at once, a running one within `connectors.agents.poll_ms`
/// (mid-stream or mid-tool). Cancelling a cancelled run is a no-op.
#[utoipa::path(post, path = "/api/agent-runs/{id}/cancel", tag = "agents", operation_id = "cancel_agent_run",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "Cancelled, or asked to stop", body = RunView),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such run of the caller's", body = crate::platform::error::ErrorBody),
        (status = 409, description = "The run already finished", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn cancel(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AgentsError> {
    let view = service::cancel(&state.ctx, &caller.id, &id).await?;
    Ok(HttpResponse::Accepted().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct StreamQuery {
    /// Resume after this event id (what `Last-Event-ID` does; the header wins).
    after: Option<i64>,
}

/// Server-Sent Events of one run from its start (or after `Last-Event-ID`): `event:` is the
/// type (`status`, `text_delta`, `model_message`, `model_retry`, `tool_call_started`,
/// `tool_call_finished`), `id:` the cursor. Ends after the run's final `status`. Served by any
/// process: events are read from the database.
#[utoipa::path(get, path = "/api/agent-runs/{id}/events", tag = "agents", operation_id = "stream_agent_run_events",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Run id"),
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "text/event-stream of the run's events", content_type = "text/event-stream"),
        (status = 400, description = "Last-Event-ID is not an event id", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such run of the caller's", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn events(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, AgentsError> {
    let resume = match req.headers().get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    AgentsError::Validation("Last-Event-ID is not an event id".into())
                })?,
        ),
        None => query.after,
    };
    let run = service::owned(&state.ctx, &caller.id, &id).await?;
    let ctx = &state.ctx;
    let after = resume.unwrap_or(0);
    let (rx, published) = ctx.agent_events.subscribe(&run.id, after);
    let stream = Stream {
        run: run.id,
        pool: ctx.pool.clone(),
        rx,
        after,
        seen: after,
        // Events up to where the hub had published when we subscribed are read here; later
        // ones arrive through `rx`.
        read_up_to: (published > after).then_some(published),
        pending: VecDeque::new(),
        keepalive: Duration::from_secs(ctx.config.webhooks.stream_keepalive_secs.max(1)),
        opened: false,
        ended: false,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(stream, Stream::next)))
}

/// One client's stream: the run's events from the database up to where the process's hub had
/// published them, then from the hub (see `hub.rs`); from the database again if it fell behind.
struct Stream {
    run: String,
    pool: crate::db::DbPool,
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<EventRow>>,
    /// The last event sent.
    after: i64,
    /// The last event queued in `pending` (later ones from the hub are new).
    seen: i64,
    /// Read the database (above `seen`) up to this before listening to `rx`; `i64::MAX`: all.
    read_up_to: Option<i64>,
    pending: VecDeque<EventRow>,
    keepalive: Duration,
    opened: bool,
    ended: bool,
}

impl Stream {
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        use tokio::sync::broadcast::error::RecvError;
        if !self.opened {
            self.opened = true;
            return Some((
                Ok(Bytes::from_static(b"retry: 2000\n: connected\n\n")),
                self,
            ));
        }
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.after = ev.id;
                let last = ev.event_type == "status"
                    && ev
                        .data
                        .get("status")
                        .and_then(|s| s.as_str())
                        .is_some_and(super::models::is_final);
                if last {
                    self.ended = true;
                }
                let data = serde_json::to_string(&ev.data).unwrap_or_else(|_| "{}".into());
                let frame = format!("id: {}\nevent: {}\ndata: {data}\n\n", ev.id, ev.event_type);
                return Some((Ok(Bytes::from(frame)), self));
            }
            if self.ended {
                return None;
            }
            if let Some(limit) = self.read_up_to {
                let (run, seen) = (self.run.clone(), self.seen);
                let rows =
                    db::query(&self.pool, move |c| store::events_after(c, &run, seen, 500)).await;
                match rows {
                    Ok(rows) => {
                        let more = rows.len() == 500;
                        for row in rows {
                            self.seen = row.id;
                            self.pending.push_back(row);
                        }
                        if !more || self.seen >= limit {
                            self.read_up_to = None;
                        }
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "agent run stream read failed");
                        return None;
                    }
                }
            }
            match tokio::time::timeout(self.keepalive, self.rx.recv()).await {
                Ok(Ok(row)) => {
                    if row.id > self.seen {
                        self.seen = row.id;
                        self.pending.push_back(EventRow::clone(&row));
                    }
                }
                // Fell behind the hub's buffer: catch up from the database.
                Ok(Err(RecvError::Lagged(_))) => self.read_up_to = Some(i64::MAX),
                Ok(Err(RecvError::Closed)) => return None,
                Err(_) => return Some((Ok(Bytes::from_static(b": keepalive\n\n")), self)),
            }
        }
    }
}
