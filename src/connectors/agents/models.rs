//! Rows of the agent tables and the views a run's owner sees.

use crate::connectors::anthropic::Usage;
use crate::db::ids::UserId;
use crate::db::schema::{agent_events, agent_runs, agent_steps};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = agent_runs, check_for_backend(diesel::pg::Pg))]
pub struct RunRow {
    pub id: String,
    pub owner_id: UserId,
    pub status: String,
    pub prompt: String,
    pub model: String,
    /// [`Options`] as JSON.
    pub options: Value,
    pub tool_table: Option<Value>,
    pub turns: i32,
    /// [`Usage`] as JSON, summed over the run's model calls.
    pub usage: Value,
    pub stop_reason: Option<String>,
    pub final_text: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What the caller asked for besides the prompt and model.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Options {
    pub system: Option<String>,
    /// Server ids or names, tool names: NULL = every tool.
    pub tools: Option<Vec<String>>,
    pub max_turns: i32,
    pub max_tokens_budget: Option<i64>,
    /// Set for a run answering a provider (a Linear agent session): its only tools are that
    /// provider's catalog MCP server reached with this connection's token, not the owner's
    /// MCP servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ToolConnection>,
    /// The messages a run continuing an earlier one starts from (that run's conversation and
    /// the user's answer), instead of one user message with the prompt: a Linear session's
    /// answer to an `elicitation` goes on with the same conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Vec<Value>>,
}

/// A provider connection whose catalog MCP server a run's tools come from.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ToolConnection {
    pub provider: String,
    pub connection_id: String,
}

impl RunRow {
    pub fn usage(&self) -> Usage {
        Usage::from_json(&self.usage)
    }

    pub fn options(&self) -> Options {
        serde_json::from_value(self.options.clone()).unwrap_or(Options {
            max_turns: 1,
            ..Options::default()
        })
    }

    pub fn finished(&self) -> bool {
        is_final(&self.status)
    }
}

pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "stopped" | "cancelled" | "failed")
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agent_steps, check_for_backend(diesel::pg::Pg))]
pub struct StepRow {
    pub turn: i32,
    pub kind: String,
    pub status: String,
    pub content: Option<Value>,
    pub stop_reason: Option<String>,
    pub usage: Option<Value>,
    pub request_id: Option<String>,
    pub tool_use_id: Option<String>,
    pub tool_name: Option<String>,
    pub input: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i32>,
}

/// A step row to insert; serialized, it is one element of the rows parameter of
/// [`super::store::record_model_step`]'s single statement.
#[derive(Debug, Insertable, Serialize)]
#[diesel(table_name = agent_steps)]
pub struct NewStep {
    pub run_id: String,
    pub turn: i32,
    pub kind: String,
    pub status: String,
    pub content: Option<Value>,
    pub stop_reason: Option<String>,
    pub usage: Option<Value>,
    pub request_id: Option<String>,
    pub tool_use_id: Option<String>,
    pub tool_name: Option<String>,
    pub input: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i32>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agent_events, check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
    pub id: i64,
    pub event_type: String,
    pub data: Value,
}

/// A run as its owner sees it in lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// `queued`, `running`, `completed` (the model ended), `stopped` (max_turns or the token
    /// budget), `cancelled`, `failed`.
    pub status: String,
    pub model: String,
    pub prompt: String,
    pub max_turns: i32,
    pub max_tokens_budget: Option<i64>,
    /// Model calls made.
    pub turns: i32,
    pub usage: Usage,
    /// `end_turn`, `max_tokens`, `refusal` … (the model's), or `max_turns`, `token_budget`,
    /// `cancelled`, `error`.
    pub stop_reason: Option<String>,
    /// The text of the last model message.
    pub final_text: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&RunRow> for RunView {
    fn from(r: &RunRow) -> Self {
        let o = r.options();
        Self {
            id: r.id.clone(),
            status: r.status.clone(),
            model: r.model.clone(),
            prompt: r.prompt.clone(),
            max_turns: o.max_turns,
            max_tokens_budget: o.max_tokens_budget,
            turns: r.turns,
            usage: r.usage(),
            stop_reason: r.stop_reason.clone(),
            final_text: r.final_text.clone(),
            error: r.error.clone(),
            cancel_requested: r.cancel_requested,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// One step: a model call or a tool call.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub turn: i32,
    /// `model` or `tool`.
    pub kind: String,
    /// model: `ok`; tool: `started`, `ok`, `error`, `interrupted` (a crash mid-call: not run
    /// again), `cancelled`.
    pub status: String,
    /// model: the assistant's content blocks; tool: the `tool_result` content sent back.
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
    pub stop_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Value>,
    pub request_id: Option<String>,
    pub tool_use_id: Option<String>,
    /// The tool's name as offered to the model (`<server key>__<tool>`).
    pub tool_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i32>,
}

impl From<StepRow> for StepView {
    fn from(s: StepRow) -> Self {
        Self {
            turn: s.turn,
            kind: s.kind,
            status: s.status,
            content: s.content,
            stop_reason: s.stop_reason,
            usage: s.usage,
            request_id: s.request_id,
            tool_use_id: s.tool_use_id,
            tool_name: s.tool_name,
            input: s.input,
            started_at: s.started_at,
            finished_at: s.finished_at,
            duration_ms: s.duration_ms,
        }
    }
}

/// `GET /api/agent-runs/{id}`: the run and every step so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunView,
    pub system: Option<String>,
    pub steps: Vec<StepView>,
}
