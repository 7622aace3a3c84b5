//! Queries on the agent tables. Lookups for a client take the owner (another user's run is
//! "not found"); the worker's take the run id alone. Each takes `&mut PgConnection`.

use super::models::{EventRow, NewStep, RunRow, StepRow};
use crate::db::ids::UserId;
use crate::db::schema::{agent_events, agent_runs, agent_steps};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

pub fn insert_run(conn: &mut PgConnection, row: &RunRow) -> QueryResult<()> {
    diesel::insert_into(agent_runs::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Runs of `owner` queued or running.
pub fn count_active(conn: &mut PgConnection, owner: &UserId) -> QueryResult<i64> {
    agent_runs::table
        .filter(agent_runs::owner_id.eq(owner))
        .filter(agent_runs::status.eq_any(["queued", "running"]))
        .count()
        .get_result(conn)
}

/// How many runs `owner` started since `since`, and the oldest of them.
pub fn started_since(
    conn: &mut PgConnection,
    owner: &UserId,
    since: DateTime<Utc>,
) -> QueryResult<(i64, Option<DateTime<Utc>>)> {
    agent_runs::table
        .filter(agent_runs::owner_id.eq(owner))
        .filter(agent_runs::created_at.gt(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(agent_runs::created_at),
        ))
        .get_result(conn)
}

pub fn list_for_owner(
    conn: &mut PgConnection,
    owner: &UserId,
    limit: i64,
) -> QueryResult<Vec<RunRow>> {
    agent_runs::table
        .filter(agent_runs::owner_id.eq(owner))
        .order((agent_runs::created_at.desc(), agent_runs::id.desc()))
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)
}

pub fn find_for_owner(
    conn: &mut PgConnection,
    id: &str,
    owner: &UserId,
) -> QueryResult<Option<RunRow>> {
    agent_runs::table
        .filter(agent_runs::id.eq(id))
        .filter(agent_runs::owner_id.eq(owner))
        .select(RunRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut PgConnection, id: &str) -> QueryResult<Option<RunRow>> {
    agent_runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)
        .optional()
}

pub fn steps(conn: &mut PgConnection, run: &str) -> QueryResult<Vec<StepRow>> {
    agent_steps::table
        .filter(agent_steps::run_id.eq(run))
        .order(agent_steps::id.asc())
        .select(StepRow::as_select())
        .load(conn)
}

pub fn events_after(
    conn: &mut PgConnection,
    run: &str,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    agent_events::table
        .filter(agent_events::run_id.eq(run))
        .filter(agent_events::id.gt(after))
        .order(agent_events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
}

pub fn add_event(
    conn: &mut PgConnection,
    run: &str,
    kind: &str,
    data: &Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(agent_events::table)
        .values((
            agent_events::run_id.eq(run),
            agent_events::event_type.eq(kind),
            agent_events::data.eq(data),
            agent_events::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// `queued` → `running` (first claim), with its event. Returns the row as it is now. One
/// statement, one round trip: a run already started (a re-claim) is returned as it is.
pub fn start(conn: &mut PgConnection, id: &str, now: DateTime<Utc>) -> QueryResult<Option<RunRow>> {
    use diesel::sql_types::{Text, Timestamptz};
    crate::db::prepared(
        "WITH started AS ( \
             UPDATE agent_runs SET status = 'running', started_at = $2 \
             WHERE id = $1 AND status = 'queued' RETURNING *), \
         event AS ( \
             INSERT INTO agent_events (run_id, event_type, data, created_at) \
             SELECT id, 'status', '{\"status\": \"running\"}'::jsonb, $2 FROM started) \
         SELECT * FROM started \
         UNION ALL \
         SELECT * FROM agent_runs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM started)",
    )
    .bind::<Text, _>(id)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .optional()
}

/// Event rows whose loss in a crash costs nothing the run needs (text deltas: the model step
/// that follows carries the whole message): written without waiting for the WAL flush, in one
/// statement (the setting holds for its transaction alone).
pub fn add_event_async_commit(
    conn: &mut PgConnection,
    run: &str,
    kind: &str,
    data: &Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::sql_types::{Jsonb, Text, Timestamptz};
    crate::db::prepared(
        "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS mode) \
         INSERT INTO agent_events (run_id, event_type, data, created_at) \
         SELECT $1, $2, $3, $4 FROM lazy",
    )
    .bind::<Text, _>(run)
    .bind::<Text, _>(kind)
    .bind::<Jsonb, _>(data)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .map(drop)
}

/// What a completed model call writes, in one commit.
pub struct ModelStep<'a> {
    pub step: &'a NewStep,
    pub usage: &'a crate::connectors::anthropic::Usage,
    /// The stream's last text delta not yet written.
    pub tail: Option<&'a Value>,
    /// The message's tool calls, recorded `started` before any of them runs.
    pub tools: &'a [NewStep],
    /// [`Commit::Durable`] when a tool that may change something runs next (see [`Commit`]).
    pub commit: Commit,
    /// The run's end, when this message ends it.
    pub ending: Option<&'a Ending<'a>>,
    /// The run answers a Linear agent session: its end also queues the session's final reply.
    pub session: bool,
}

/// Records a model step in one commit; returns the run's cancel flag. One statement,
/// one round trip, unless the step ends a session run (whose final reply is queued with it).
pub fn record_model_step(
    conn: &mut PgConnection,
    m: &ModelStep<'_>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let step = m.step;
    let mut events = Vec::with_capacity(3 + m.tools.len());
    if let Some(data) = m.tail {
        events.push(serde_json::json!({"kind": "text_delta", "data": data}));
    }
    events.push(serde_json::json!({
        "kind": "model_message",
        "data": {
            "turn": step.turn,
            "stop_reason": step.stop_reason,
            "usage": step.usage,
            "content": step.content,
        },
    }));
    events.extend(
        tools_started_events(m.tools)
            .map(|(_, kind, data)| serde_json::json!({"kind": kind, "data": data})),
    );
    if let Some(end) = m.ending {
        // Kept only when the statement does end the run (see `model_step_statement`).
        events.push(serde_json::json!({"kind": "status", "data": status_data(end)}));
    }
    let steps: Vec<&NewStep> = std::iter::once(step).chain(m.tools).collect();
    let rows = StepRows {
        steps: serde_json::to_value(&steps).unwrap_or(Value::Null),
        events: Value::Array(events),
    };
    if m.ending.is_none() || !m.session {
        return model_step_statement(conn, m, &rows, now).map(|r| r.cancel_requested);
    }
    conn.transaction(|c| {
        let r = model_step_statement(c, m, &rows, now)?;
        if r.ends {
            crate::connectors::linear_agent::on_run_end(c, &step.run_id, now)?;
        }
        Ok(r.cancel_requested)
    })
}

/// The rows of a model step, as the parameters of its statement.
struct StepRows {
    steps: Value,
    events: Value,
}

#[derive(QueryableByName)]
struct StepWritten {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    cancel_requested: bool,
    /// The step ended the run (it was still queued or running).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ends: bool,
}

/// The step rows, the run's turn count and usage (and its end, when the step ends it and the
/// run had not already ended), and the events, in one statement of data-modifying CTEs. `cur`
/// locks the run's row and reads whether it is still open, so a run ended by another claim
/// meanwhile is not ended twice: its `status` event is then dropped too. Rows keep the order
/// given (their ids follow it). `lazy` sets the commit's mode (see [`finish_tool_statement`]).
fn model_step_statement(
    conn: &mut PgConnection,
    m: &ModelStep<'_>,
    rows: &StepRows,
    now: DateTime<Utc>,
) -> QueryResult<StepWritten> {
    use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let usage = m.usage;
    let end = m.ending;
    crate::db::prepared(
        "WITH lazy AS (SELECT set_config('synchronous_commit', \
             CASE WHEN $6 THEN 'off' ELSE current_setting('synchronous_commit') END, true) AS mode), \
         cur AS MATERIALIZED ( \
             SELECT status IN ('queued', 'running') AND $10::text IS NOT NULL AS ends \
             FROM agent_runs, lazy WHERE id = $1 FOR UPDATE OF agent_runs), \
         steps AS ( \
             INSERT INTO agent_steps (run_id, turn, kind, status, content, stop_reason, usage, \
                 request_id, tool_use_id, tool_name, input, started_at, finished_at, duration_ms) \
             SELECT s->>'run_id', (s->>'turn')::int, s->>'kind', s->>'status', \
                 nullif(s->'content', 'null'), s->>'stop_reason', nullif(s->'usage', 'null'), \
                 s->>'request_id', s->>'tool_use_id', s->>'tool_name', nullif(s->'input', 'null'), \
                 (s->>'started_at')::timestamptz, \
                 (s->>'finished_at')::timestamptz, (s->>'duration_ms')::int \
             FROM jsonb_array_elements($7) WITH ORDINALITY AS r(s, i) ORDER BY i), \
         run AS ( \
             UPDATE agent_runs r SET turns = r.turns + 1, usage = jsonb_build_object( \
                 'input_tokens', coalesce((r.usage->>'input_tokens')::bigint, 0) + $2, \
                 'output_tokens', coalesce((r.usage->>'output_tokens')::bigint, 0) + $3, \
                 'cache_creation_input_tokens', coalesce((r.usage->>'cache_creation_input_tokens')::bigint, 0) + $4, \
                 'cache_read_input_tokens', coalesce((r.usage->>'cache_read_input_tokens')::bigint, 0) + $5), \
                 status = CASE WHEN cur.ends THEN $10 ELSE r.status END, \
                 stop_reason = CASE WHEN cur.ends THEN $11 ELSE r.stop_reason END, \
                 final_text = CASE WHEN cur.ends THEN $12 ELSE r.final_text END, \
                 error = CASE WHEN cur.ends THEN $13 ELSE r.error END, \
                 finished_at = CASE WHEN cur.ends THEN $9 ELSE r.finished_at END \
             FROM cur WHERE r.id = $1 RETURNING r.cancel_requested, cur.ends), \
         events AS ( \
             INSERT INTO agent_events (run_id, event_type, data, created_at) \
             SELECT $1, e->>'kind', e->'data', $9 \
             FROM jsonb_array_elements($8) WITH ORDINALITY AS r(e, i) \
             WHERE e->>'kind' <> 'status' OR (SELECT ends FROM run) ORDER BY i) \
         SELECT cancel_requested, ends FROM run",
    )
    .bind::<Text, _>(&m.step.run_id)
    .bind::<BigInt, _>(n(usage.input_tokens))
    .bind::<BigInt, _>(n(usage.output_tokens))
    .bind::<BigInt, _>(n(usage.cache_creation_input_tokens))
    .bind::<BigInt, _>(n(usage.cache_read_input_tokens))
    .bind::<diesel::sql_types::Bool, _>(m.commit == Commit::Lazy)
    .bind::<Jsonb, _>(&rows.steps)
    .bind::<Jsonb, _>(&rows.events)
    .bind::<Timestamptz, _>(now)
    .bind::<Nullable<Text>, _>(end.map(|e| e.status))
    .bind::<Nullable<Text>, _>(end.map(|e| e.stop_reason))
    .bind::<Nullable<Text>, _>(end.and_then(|e| e.final_text))
    .bind::<Nullable<Text>, _>(end.and_then(|e| e.error))
    .get_result(conn)
}

/// Event rows in one statement, in the order given (their ids follow it).
fn insert_events(
    conn: &mut PgConnection,
    rows: &[(&str, &str, Value)],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let values: Vec<_> = rows
        .iter()
        .map(|(run, kind, data)| {
            (
                agent_events::run_id.eq(*run),
                agent_events::event_type.eq(*kind),
                agent_events::data.eq(data),
                agent_events::created_at.eq(now),
            )
        })
        .collect();
    diesel::insert_into(agent_events::table)
        .values(values)
        .execute(conn)
        .map(drop)
}

fn tools_started_events(steps: &[NewStep]) -> impl Iterator<Item = (&str, &str, Value)> {
    steps.iter().map(|s| {
        (
            s.run_id.as_str(),
            "tool_call_started",
            serde_json::json!({
                "turn": s.turn, "tool_use_id": s.tool_use_id, "name": s.tool_name, "input": s.input,
            }),
        )
    })
}

/// Tool calls about to run, recorded `started` (with their events) before any is executed:
/// two statements, inside the caller's transaction.
pub fn record_tools_started(
    conn: &mut PgConnection,
    steps: &[NewStep],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if steps.is_empty() {
        return Ok(());
    }
    diesel::insert_into(agent_steps::table)
        .values(steps)
        .execute(conn)?;
    insert_events(conn, &tools_started_events(steps).collect::<Vec<_>>(), now)
}

/// A tool call's outcome.
pub struct ToolOutcome<'a> {
    pub run: &'a str,
    pub tool_use_id: &'a str,
    /// `ok`, `error`, `interrupted` or `cancelled`.
    pub status: &'a str,
    pub content: &'a Value,
    pub duration_ms: Option<i32>,
}

/// How a step of the loop is committed. The rule: the WAL is flushed before anything outside
/// the database can act on what was written, and only then.
///
/// PostgreSQL's WAL is one sequence, so any later durable commit (of this run or any other
/// transaction) flushes an earlier lazy one too. Everything the loop does outside the database
/// after a lazy commit is harmless to repeat (a model call, a tool that declares
/// `readOnlyHint`), or comes after a durable commit: a tool that may change something runs
/// after its step's flush, and a job (the run's next claim, a Linear activity or reply) acts
/// only after its claim, which is durable. A worker crash loses nothing either way: the commit
/// has happened, only its flush is pending. What a PostgreSQL crash in that gap (a fraction of
/// a second: the WAL writer flushes within `wal_writer_delay`) can lose is lost as a whole
/// suffix of the run: the run resumes from its last flushed step, calls the model again, and
/// the calls it finds `started` are reported to the model as interrupted, never run again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Commit {
    /// Waits for the WAL flush: a step after which a tool that may change something runs, and
    /// every write outside the loop.
    Durable,
    /// Does not wait for it (`synchronous_commit = off` for this transaction alone): a finished
    /// tool call's result, the run's tool table, a step that ends the run (the job's durable
    /// completion follows) or that asks only for read-only tools.
    Lazy,
}

/// Stores the run's tool table, listed when its first claim began; written while the first
/// model call goes out, and settled before its step (so a run with steps has a table).
pub fn record_tool_table(conn: &mut PgConnection, run: &str, table: &Value) -> QueryResult<()> {
    use diesel::sql_types::{Jsonb, Text};
    crate::db::prepared(
        "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS mode) \
         UPDATE agent_runs SET tool_table = $2 FROM lazy WHERE id = $1",
    )
    .bind::<Text, _>(run)
    .bind::<Jsonb, _>(table)
    .execute(conn)
    .map(drop)
}

/// A tool call's outcome and its event, in one statement. A run answering a Linear agent
/// session (`session`) also gets the job mirroring the call as an `action`, in the same
/// transaction.
pub fn finish_tool(
    conn: &mut PgConnection,
    out: &ToolOutcome<'_>,
    session: bool,
    commit: Commit,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if !session {
        return finish_tool_statement(conn, out, commit, now);
    }
    conn.transaction(|c| {
        finish_tool_statement(c, out, commit, now)?;
        crate::connectors::linear_agent::on_tool_finished(c, out.run, now)
    })
}

/// `set_config(…, true)` holds until the end of the transaction, whether the statement's own
/// or the caller's, and the commit reads it: one round trip, no `SET LOCAL` of its own.
fn finish_tool_statement(
    conn: &mut PgConnection,
    out: &ToolOutcome<'_>,
    commit: Commit,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::sql_types::{Integer, Jsonb, Nullable, Text, Timestamptz};
    crate::db::prepared(
        "WITH lazy AS (SELECT set_config('synchronous_commit', \
             CASE WHEN $7 THEN 'off' ELSE current_setting('synchronous_commit') END, true)), \
         step AS ( \
             UPDATE agent_steps SET status = $3, content = $4, finished_at = $6, duration_ms = $5 \
             WHERE run_id = $1 AND kind = 'tool' AND tool_use_id = $2 RETURNING run_id) \
         INSERT INTO agent_events (run_id, event_type, data, created_at) \
         SELECT $1, 'tool_call_finished', jsonb_build_object('tool_use_id', $2::text, \
             'status', $3::text, 'is_error', $3::text <> 'ok', 'duration_ms', $5::int), $6 \
         FROM lazy",
    )
    .bind::<Text, _>(out.run)
    .bind::<Text, _>(out.tool_use_id)
    .bind::<Text, _>(out.status)
    .bind::<Jsonb, _>(out.content)
    .bind::<Nullable<Integer>, _>(out.duration_ms)
    .bind::<Timestamptz, _>(now)
    .bind::<diesel::sql_types::Bool, _>(commit == Commit::Lazy)
    .execute(conn)
    .map(drop)
}

/// The run's end, once: false when it had already ended.
pub struct Ending<'a> {
    pub status: &'a str,
    pub stop_reason: &'a str,
    pub final_text: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn finish_run(
    conn: &mut PgConnection,
    id: &str,
    end: &Ending<'_>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    conn.transaction(|c| finish_run_in(c, id, end, now))
}

/// [`finish_run`] inside the caller's transaction.
fn finish_run_in(
    c: &mut PgConnection,
    id: &str,
    end: &Ending<'_>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let n = diesel::update(
        agent_runs::table
            .filter(agent_runs::id.eq(id))
            .filter(agent_runs::status.eq_any(["queued", "running"])),
    )
    .set((
        agent_runs::status.eq(end.status),
        agent_runs::stop_reason.eq(end.stop_reason),
        agent_runs::final_text.eq(end.final_text),
        agent_runs::error.eq(end.error),
        agent_runs::finished_at.eq(now),
    ))
    .execute(c)?;
    if n == 1 {
        add_event(c, id, "status", &status_data(end), now)?;
        // A run answering a Linear agent session: its final activity goes out as a job.
        crate::connectors::linear_agent::on_run_end(c, id, now)?;
    }
    Ok(n == 1)
}

/// A `status` event's data for a run's end.
fn status_data(end: &Ending<'_>) -> Value {
    serde_json::json!({
        "status": end.status, "stop_reason": end.stop_reason,
        "final_text": end.final_text, "error": end.error,
    })
}

/// Asks a run to stop: a queued one is cancelled at once; a running one when its worker next
/// looks. Returns the row after, or `None` when the owner has no such run.
pub fn request_cancel(
    conn: &mut PgConnection,
    id: &str,
    owner: &UserId,
    now: DateTime<Utc>,
) -> QueryResult<Option<RunRow>> {
    conn.transaction(|c| {
        let Some(row) = find_for_owner(c, id, owner)? else {
            return Ok(None);
        };
        if row.status == "queued" {
            finish_run_in(
                c,
                id,
                &Ending {
                    status: "cancelled",
                    stop_reason: "cancelled",
                    final_text: None,
                    error: None,
                },
                now,
            )?;
        } else if row.status == "running" && !row.cancel_requested {
            diesel::update(agent_runs::table.find(id))
                .set(agent_runs::cancel_requested.eq(true))
                .execute(c)?;
        }
        find(c, id)
    })
}

/// A cancel while tools ran: the calls still `started` are marked `cancelled`.
pub fn cancel_started_tools(
    conn: &mut PgConnection,
    run: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        agent_steps::table
            .filter(agent_steps::run_id.eq(run))
            .filter(agent_steps::kind.eq("tool"))
            .filter(agent_steps::status.eq("started")),
    )
    .set((
        agent_steps::status.eq("cancelled"),
        agent_steps::finished_at.eq(now),
    ))
    .execute(conn)
}

/// Deletes up to `limit` runs that finished before `cutoff` (their steps and events go with
/// them); returns how many.
pub fn prune_finished(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    use diesel::sql_types::{BigInt, Timestamptz};
    crate::db::prepared(
        "DELETE FROM agent_runs WHERE id IN (SELECT id FROM agent_runs \
         WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<BigInt, _>(limit)
    .execute(conn)
}
