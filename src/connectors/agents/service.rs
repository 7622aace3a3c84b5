//! Starting, listing, reading and cancelling a user's agent runs. No actix types here.

use super::error::AgentsError;
use super::models::{Options, RunDetail, RunRow, RunView, StepView};
use super::run::RUN_KIND;
use super::store;
use crate::connectors::Ctx;
use crate::db::ids::UserId;
use crate::db::{self, DbError};
use crate::jobs::{EnqueueOpts, enqueue};
use serde_json::json;
use std::sync::Arc;

/// When a run will have ended is unknown: the `Retry-After` past the concurrency limit.
const ACTIVE_RETRY_AFTER_SECS: u64 = 5;

/// What `POST /api/agent-runs` asks for, checked.
pub struct NewRun {
    pub prompt: String,
    pub system: Option<String>,
    pub tools: Option<Vec<String>>,
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub max_tokens_budget: Option<u64>,
    /// Tools from this connection's provider MCP server only (Linear agent sessions).
    pub connection: Option<super::models::ToolConnection>,
    /// Where a continuing run starts from (see [`Options::conversation`]).
    pub conversation: Option<Vec<serde_json::Value>>,
}

fn check(ctx: &Ctx, new: &NewRun) -> Result<(), AgentsError> {
    let a = &ctx.config.connectors.agents;
    if new.prompt.trim().is_empty() {
        return Err(AgentsError::Validation("prompt must not be empty".into()));
    }
    if new.prompt.len() > a.max_prompt_bytes
        || new
            .system
            .as_ref()
            .is_some_and(|s| s.len() > a.max_prompt_bytes)
    {
        return Err(AgentsError::Validation(format!(
            "prompt and system must be at most {} bytes",
            a.max_prompt_bytes
        )));
    }
    if let Some(n) = new.max_turns
        && !(1..=a.max_turns_limit).contains(&n)
    {
        return Err(AgentsError::Validation(format!(
            "max_turns must be between 1 and {}",
            a.max_turns_limit
        )));
    }
    if new.max_tokens_budget == Some(0)
        || new.max_tokens_budget.is_some_and(|b| b > i64::MAX as u64)
    {
        return Err(AgentsError::Validation(
            "max_tokens_budget must be a positive number".into(),
        ));
    }
    if let Some(m) = &new.model
        && (m.is_empty()
            || m.len() > 100
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:@".contains(&b)))
    {
        return Err(AgentsError::Validation("model is not a model name".into()));
    }
    if let Some(t) = &new.tools
        && (t.len() > 200 || t.iter().any(|n| n.is_empty() || n.len() > 200))
    {
        return Err(AgentsError::Validation(
            "tools must be at most 200 names of 1 to 200 characters".into(),
        ));
    }
    Ok(())
}

/// Checks the request and builds the run's row (not stored yet).
pub fn prepare(ctx: &Ctx, owner: &UserId, new: NewRun) -> Result<RunRow, AgentsError> {
    if !ctx.anthropic.configured() {
        return Err(AgentsError::NotConfigured);
    }
    check(ctx, &new)?;
    let a = &ctx.config.connectors.agents;
    Ok(RunRow {
        id: format!("run_{}", crate::crypto::random::id()),
        owner_id: owner.to_owned(),
        status: "queued".into(),
        prompt: new.prompt,
        model: new
            .model
            .unwrap_or_else(|| ctx.config.connectors.anthropic.model.clone()),
        options: json!(Options {
            system: new.system,
            tools: new.tools,
            max_turns: i32::try_from(new.max_turns.unwrap_or(a.default_max_turns)).unwrap_or(1),
            max_tokens_budget: new.max_tokens_budget.and_then(|b| i64::try_from(b).ok()),
            connection: new.connection,
            conversation: new.conversation,
        }),
        tool_table: None,
        turns: 0,
        usage: json!({}),
        stop_reason: None,
        final_text: None,
        error: None,
        cancel_requested: false,
        created_at: ctx.clock.now(),
        started_at: None,
        finished_at: None,
    })
}

/// Checks the owner's limits, stores the run and queues its job, inside the caller's
/// transaction (the caller wakes the workers after the commit).
pub fn insert_in(
    c: &mut diesel::PgConnection,
    ctx: &Ctx,
    stored: &RunRow,
) -> Result<(), AgentsError> {
    use diesel::RunQueryDsl;
    let a = &ctx.config.connectors.agents;
    let now = stored.created_at;
    // Serialises one owner's starts so two at once cannot both slip under the limits.
    crate::db::prepared("SELECT pg_advisory_xact_lock(hashtext('agent_runs:' || $1))")
        .bind::<diesel::sql_types::Text, _>(&stored.owner_id)
        .execute(c)
        .map(drop)?;
    if store::count_active(c, &stored.owner_id)? >= i64::from(a.max_concurrent_runs) {
        return Err(AgentsError::TooManyActive(ACTIVE_RETRY_AFTER_SECS));
    }
    let (count, oldest) =
        store::started_since(c, &stored.owner_id, now - chrono::Duration::hours(1))?;
    if count >= i64::from(a.max_runs_per_hour) {
        let free_at = oldest.unwrap_or(now) + chrono::Duration::hours(1);
        let secs = (free_at - now).num_seconds().max(1);
        return Err(AgentsError::RateLimited(u64::try_from(secs).unwrap_or(1)));
    }
    store::insert_run(c, stored)?;
    store::add_event(c, &stored.id, "status", &json!({"status": "queued"}), now)?;
    // One claim more than the run's attempts: that last claim only fails the run, so a run
    // whose every worker died still ends.
    let attempts = i32::try_from(a.max_attempts).unwrap_or(3);
    enqueue(
        c,
        now,
        RUN_KIND,
        &json!({ "run_id": stored.id }),
        &EnqueueOpts {
            max_attempts: Some(attempts + 1),
            ..EnqueueOpts::default()
        },
    )?;
    Ok(())
}

/// Checks the limits, stores the run and queues its job in one transaction.
pub async fn create(ctx: &Arc<Ctx>, owner: &UserId, new: NewRun) -> Result<RunRow, AgentsError> {
    let row = prepare(ctx, owner, new)?;
    let stored = row.clone();
    let c2 = ctx.clone();
    db::run(&ctx.pool, move |c| -> Result<(), AgentsError> {
        use diesel::Connection;
        c.transaction(|c| insert_in(c, &c2, &stored))
    })
    .await?;
    ctx.jobs_wake.notify_one();
    tracing::info!(run_id = %row.id, "agent run queued");
    Ok(row)
}

pub async fn list(ctx: &Arc<Ctx>, owner: &UserId, limit: i64) -> Result<Vec<RunView>, AgentsError> {
    let owner = owner.to_owned();
    let rows = db::query(&ctx.pool, move |c| store::list_for_owner(c, &owner, limit)).await?;
    Ok(rows.iter().map(RunView::from).collect())
}

pub async fn get(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<RunDetail, AgentsError> {
    let (owner, id) = (owner.to_owned(), id.to_owned());
    let (row, steps) = db::run(&ctx.pool, move |c| -> Result<_, AgentsError> {
        let Some(row) = store::find_for_owner(c, &id, &owner)? else {
            return Ok(None);
        };
        let steps = store::steps(c, &id)?;
        Ok(Some((row, steps)))
    })
    .await?
    .ok_or(AgentsError::RunNotFound)?;
    Ok(RunDetail {
        run: RunView::from(&row),
        system: row.options().system,
        steps: steps.into_iter().map(StepView::from).collect(),
    })
}

/// Whether `owner` has run `id` (another user's is "not found").
pub async fn owned(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<RunRow, AgentsError> {
    let (owner, id) = (owner.to_owned(), id.to_owned());
    db::query(&ctx.pool, move |c| store::find_for_owner(c, &id, &owner))
        .await?
        .ok_or(AgentsError::RunNotFound)
}

pub async fn cancel(ctx: &Arc<Ctx>, owner: &UserId, id: &str) -> Result<RunView, AgentsError> {
    let (owner, id) = (owner.to_owned(), id.to_owned());
    let now = ctx.clock.now();
    let row = db::query(&ctx.pool, move |c| {
        store::request_cancel(c, &id, &owner, now)
    })
    .await?
    .ok_or(AgentsError::RunNotFound)?;
    if row.finished() && row.status != "cancelled" {
        return Err(AgentsError::AlreadyFinished);
    }
    Ok(RunView::from(&row))
}

/// Retention: deletes finished runs older than `connectors.agents.retention_days`, in batches
/// (the `events_prune` job calls this). Queued and running runs are never touched.
pub async fn prune(ctx: &Arc<Ctx>) -> Result<usize, DbError> {
    let days = ctx.config.connectors.agents.retention_days;
    let cutoff = ctx.clock.now() - chrono::Duration::days(days);
    let mut total = 0;
    loop {
        let n = db::query(&ctx.jobs_pool, move |c| {
            store::prune_finished(c, cutoff, 1000)
        })
        .await?;
        total += n;
        if n < 1000 {
            return Ok(total);
        }
    }
}
