//! The `agent_run` job: the tool loop of spec §4.3. A run replays its persisted steps into the
//! conversation first, so a re-claimed job resumes after the last completed step: a finished
//! tool call is never repeated, and one that was started but never finished (the worker died
//! mid-call) is reported to the model as an error rather than run again — the tool may have
//! had its effect, and running it twice is worse than the model hearing it is unknown.
//!
//! One commit per model step: the step with the run's end when it ends the run, or with its
//! tool calls recorded `started` when it asks for tools (so a crash between that commit and a
//! call reports the call as interrupted too, though it never began). A finished call's result,
//! and the tool table listed when the run first starts, are written on a task of their own
//! while the next model call goes out; so is a step asking only for read-only tools, while
//! they run (each write after those it follows). A flushed step, the run's end and the next
//! turn's first text delta wait for them; a failed one fails the claim before the next model
//! call (or at the settle, when that call went out before the write failed).
//!
//! The WAL is flushed only before something outside the database acts on what was written
//! ([`store::Commit`]): a turn waits for a flush when its message asks for a tool that may
//! change something, and for none when it asks only for read-only tools or ends the run (the
//! job's completion, a durable commit, follows and flushes it).

use super::models::{NewStep, RunRow, StepRow};
use super::store::{self, Ending, ModelStep};
use super::tools::{self, ToolEntry};
use super::writes::{Write, Writes};
use crate::connectors::Ctx;
use crate::connectors::anthropic::sse::Delta;
use crate::connectors::anthropic::{AnthropicError, Request, Usage};
use crate::db::{self, DbError};
use crate::jobs::{Job, JobError};
use diesel::Connection;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const RUN_KIND: &str = "agent_run";

/// The stop reason of a run that ended asking its user a question (status `completed`; the
/// question is its final text).
pub const AWAITING_INPUT: &str = "awaiting_input";

/// The loop's own time per turn: the turn's wall time minus the time spent awaiting the model's
/// stream and the tools (the database writes, the conversation, the bookkeeping). A turn runs
/// from the end of the previous model step to the end of its own; the run's end is added to
/// its last turn.
pub static TURN_OVERHEAD: crate::jobs::metrics::Histogram = crate::jobs::metrics::Histogram::new(
    "switchboard_agent_turn_overhead_seconds",
    "Agent runs: server time per turn, excluding the model stream and tool calls.",
);

/// The part of [`TURN_OVERHEAD`] spent awaiting the database on the loop's path: the model
/// step's commit and the tool-result writes it waits for.
pub static TURN_DB_WAIT: crate::jobs::metrics::Histogram = crate::jobs::metrics::Histogram::new(
    "switchboard_agent_turn_db_wait_seconds",
    "Agent runs: time per turn awaiting the database (part of the turn overhead).",
);

/// Measures [`TURN_OVERHEAD`] and [`TURN_DB_WAIT`] for one claim of a run.
struct TurnClock {
    start: Instant,
    waited: Duration,
    db: Duration,
    /// The previous turn's overhead and database wait, recorded once the next turn (or the
    /// run's end) is known.
    pending: Option<(Duration, Duration)>,
}

impl TurnClock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            waited: Duration::ZERO,
            db: Duration::ZERO,
            pending: None,
        }
    }

    fn own(&self) -> Duration {
        self.start.elapsed().saturating_sub(self.waited)
    }

    /// A model step was recorded: the turn ends here.
    fn turn(&mut self) {
        if let Some((own, db)) = self.pending.take() {
            TURN_OVERHEAD.observe(own);
            TURN_DB_WAIT.observe(db);
        }
        self.pending = Some((self.own(), self.db));
        self.start = Instant::now();
        self.waited = Duration::ZERO;
        self.db = Duration::ZERO;
    }

    /// The run ended in this claim: what ending it cost goes to its last turn.
    fn finish(&mut self) {
        if let Some((own, db)) = self.pending.take() {
            TURN_OVERHEAD.observe(own + self.own());
            TURN_DB_WAIT.observe(db + self.db);
        }
    }
}

const INTERRUPTED: &str = "The tool call was interrupted (the worker running it stopped); it may or may not have taken effect. It was not run again.";

/// Why a run did not reach its end in this claim.
enum Failure {
    /// Worth another claim (the model or the database were unavailable).
    Retry(String),
    /// Never will work: the run fails now.
    Fatal(String),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Self::Retry(e.to_string())
    }
}

pub(crate) async fn run_job(ctx: Arc<Ctx>, job: Job) -> Result<(), JobError> {
    let Some(run_id) = job
        .payload
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(JobError::permanent("the payload has no run_id"));
    };
    let max_attempts = i32::try_from(ctx.config.connectors.agents.max_attempts).unwrap_or(3);
    if job.attempt > max_attempts {
        // The claim past the configured ones exists so a run whose last worker died still ends.
        end(
            &ctx,
            &run_id,
            "failed",
            "error",
            None,
            Some("the run was interrupted too many times"),
        )
        .await?;
        return Ok(());
    }
    let now = ctx.clock.now();
    let id = run_id.clone();
    let Some(row) = db::query(&ctx.jobs_pool, move |c| store::start(c, &id, now)).await? else {
        return Ok(());
    };
    if row.finished() {
        return Ok(());
    }
    match drive(&ctx, row).await {
        Ok(()) => Ok(()),
        Err(Failure::Retry(msg)) if job.attempt < max_attempts => {
            tracing::warn!(run_id = %run_id, error = %msg, "agent run will be retried");
            Err(JobError::retry(msg))
        }
        Err(Failure::Retry(msg) | Failure::Fatal(msg)) => {
            tracing::warn!(run_id = %run_id, error = %msg, "agent run failed");
            end(&ctx, &run_id, "failed", "error", None, Some(&msg)).await?;
            Ok(())
        }
    }
}

async fn end(
    ctx: &Arc<Ctx>,
    run: &str,
    status: &'static str,
    stop_reason: &str,
    final_text: Option<String>,
    error: Option<&str>,
) -> Result<(), DbError> {
    let now = ctx.clock.now();
    let (id, stop_reason, error) = (
        run.to_owned(),
        stop_reason.to_owned(),
        error.map(str::to_owned),
    );
    db::query(&ctx.jobs_pool, move |c| {
        store::finish_run(
            c,
            &id,
            &Ending {
                status,
                stop_reason: &stop_reason,
                final_text: final_text.as_deref(),
                error: error.as_deref(),
            },
            now,
        )
        .map(drop)
    })
    .await?;
    ctx.agent_events.nudge(run);
    Ok(())
}

/// The text blocks of a model message, joined.
fn text_of(content: &[Value]) -> String {
    content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("")
}

fn tool_uses(content: &[Value]) -> Vec<(String, String, Value)> {
    content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .map(|b| {
            let s = |k: &str| {
                b.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                s("id"),
                s("name"),
                b.get("input").cloned().unwrap_or_else(|| json!({})),
            )
        })
        .collect()
}

pub(crate) fn tool_result(id: &str, is_error: bool, content: Value) -> Value {
    let mut v = json!({ "type": "tool_result", "tool_use_id": id, "content": content });
    if is_error {
        v["is_error"] = json!(true);
    }
    v
}

/// The messages a run starts from: those it continues, or its prompt.
fn first_messages(run: &RunRow, options: &super::models::Options) -> Vec<Value> {
    options
        .conversation
        .clone()
        .unwrap_or_else(|| vec![json!({ "role": "user", "content": run.prompt })])
}

/// A finished run's whole conversation (its first messages, then every model message with the
/// results of its tool calls in between), for a run that continues it.
pub(crate) fn conversation(run: &RunRow, steps: &[StepRow]) -> Vec<Value> {
    let mut messages = first_messages(run, &run.options());
    replay_steps(&mut messages, steps);
    messages
}

/// The tool calls of a model message: id, name, input.
pub(crate) fn calls_of(content: &[Value]) -> Vec<(String, String, Value)> {
    tool_uses(content)
}

/// Appends the steps' model messages (and between two of them the results of the first's tool
/// calls) to `messages`; returns the last turn and the last model message.
#[expect(
    clippy::type_complexity,
    reason = "a turn and a message, as the loop takes them"
)]
fn replay_steps(
    messages: &mut Vec<Value>,
    steps: &[StepRow],
) -> (Option<i32>, Option<(Vec<Value>, Option<String>)>) {
    let mut models: Vec<&StepRow> = steps.iter().filter(|s| s.kind == "model").collect();
    models.sort_by_key(|s| s.turn);
    let mut last = None;
    let mut turn = None;
    for (i, m) in models.iter().enumerate() {
        let content: Vec<Value> = m
            .content
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        messages.push(json!({ "role": "assistant", "content": content }));
        turn = Some(m.turn);
        if i + 1 < models.len() && m.stop_reason.as_deref() == Some("tool_use") {
            let results: Vec<Value> = tool_uses(&content)
                .iter()
                .map(|(id, _, _)| {
                    match steps
                        .iter()
                        .find(|s| s.kind == "tool" && s.tool_use_id.as_deref() == Some(id))
                    {
                        Some(s) => tool_result(
                            id,
                            s.status != "ok",
                            s.content
                                .clone()
                                .unwrap_or_else(|| json!([tools::text(INTERRUPTED)])),
                        ),
                        None => tool_result(id, true, json!([tools::text(INTERRUPTED)])),
                    }
                })
                .collect();
            messages.push(json!({ "role": "user", "content": results }));
        }
        last = Some((content, m.stop_reason.clone()));
    }
    (turn, last)
}

struct Loop {
    ctx: Arc<Ctx>,
    options: super::models::Options,
    run: RunRow,
    table: Vec<ToolEntry>,
    model_tools: Vec<Value>,
    messages: Vec<Value>,
    usage: Usage,
    turn: i32,
    cancel: super::hub::Watching,
    /// Offers the model [`crate::connectors::linear_agent::ASK_USER`].
    elicits: bool,
    /// A cancel request read from the database (the claimed row, then each step write, which
    /// may be on a task of its own).
    cancel_seen: Arc<AtomicBool>,
    clock: TurnClock,
    /// The last model message's tool calls were recorded `started` with it (in this claim).
    prestarted: bool,
    /// Writes still in flight (the tool table, a model step that needs no flush, finished tool
    /// calls), each after those it follows: they overlap the tools and the next model call,
    /// and are awaited before anything that must follow them (a flushed step, the run's end, a
    /// delta).
    writes: Writes,
}

async fn drive(ctx: &Arc<Ctx>, run: RunRow) -> Result<(), Failure> {
    // The tool table is stored before the first model step (settled with it), so a run
    // without one has recorded no step yet: its steps need no query either.
    let mut new_table = None;
    let table = match &run.tool_table {
        Some(t) => serde_json::from_value::<Vec<ToolEntry>>(t.clone())
            .map_err(|_| Failure::Fatal("the run's tool table is unreadable".into()))?,
        None => {
            let options = run.options();
            let table = match &options.connection {
                Some(c) => tools::table_for_connection(ctx, c).await,
                None => tools::table(ctx, &run.owner_id, options.tools.as_deref()).await,
            }
            .map_err(Failure::Retry)?;
            new_table = Some(serde_json::to_value(&table).unwrap_or(Value::Null));
            table
        }
    };
    let steps = if new_table.is_some() {
        Vec::new()
    } else {
        let id = run.id.clone();
        db::query(&ctx.jobs_pool, move |c| store::steps(c, &id)).await?
    };
    let options = run.options();
    // A run answering a Linear agent session may ask its user (an `elicitation`).
    let elicits = options
        .connection
        .as_ref()
        .is_some_and(|c| c.provider == "linear");
    let mut model_tools = tools::for_model(&table);
    if elicits {
        model_tools.push(crate::connectors::linear_agent::ask_user_tool());
    }
    let mut l = Loop {
        ctx: ctx.clone(),
        model_tools,
        table,
        messages: first_messages(&run, &options),
        usage: run.usage(),
        turn: 0,
        options,
        elicits,
        cancel: ctx.agent_cancels.watch(&run.id),
        cancel_seen: Arc::new(AtomicBool::new(run.cancel_requested)),
        clock: TurnClock::new(),
        prestarted: false,
        writes: Writes::new(ctx.clone(), run.id.clone()),
        run,
    };
    if let Some(table) = new_table {
        let id = l.run.id.clone();
        l.writes.spawn(false, None, move |c| {
            store::record_tool_table(c, &id, &table)
        });
    }
    let last = l.replay(&steps);
    let looped = l.run_loop(last, &steps).await;
    // A failed run's writes still land before its job is given up or retried.
    let settled = l.settle().await;
    looped?;
    settled?;
    l.clock.finish();
    Ok(())
}

impl Loop {
    /// Rebuilds the conversation from the steps; returns the last model message (content and
    /// stop reason), whose tool calls may still be outstanding.
    fn replay(&mut self, steps: &[StepRow]) -> Option<(Vec<Value>, Option<String>)> {
        let (turn, last) = replay_steps(&mut self.messages, steps);
        if let Some(turn) = turn {
            self.turn = turn;
        }
        last
    }

    /// The question of an `ask_user` call in a model message, for a run that may ask.
    fn question(&self, content: &[Value]) -> Option<String> {
        if !self.elicits {
            return None;
        }
        tool_uses(content)
            .into_iter()
            .find(|(_, name, _)| name == crate::connectors::linear_agent::ASK_USER)
            .map(|(_, _, input)| {
                input
                    .get("question")
                    .and_then(Value::as_str)
                    .filter(|q| !q.trim().is_empty())
                    .unwrap_or("Could you tell me more?")
                    .to_owned()
            })
    }

    /// The run answers a Linear agent session (its tool calls are mirrored as activities).
    fn session(&self) -> bool {
        self.options.connection.is_some()
    }

    fn over_budget(&self) -> bool {
        self.options
            .max_tokens_budget
            .is_some_and(|b| self.usage.total() >= u64::try_from(b).unwrap_or(0))
    }

    /// A cancel request seen so far: on the run's row when claimed, on the last step write,
    /// or by this process's cancel poller. No query of its own: the waits on the model and
    /// the tools race [`Self::watch_cancel`], so a request is never missed for long.
    fn cancel_requested(&self) -> bool {
        self.cancel_seen.load(Ordering::Relaxed) || self.cancel.is_cancelled()
    }

    /// Resolves when a cancel request is seen (any process may have made it): this process's
    /// one cancel poller tells it.
    async fn watch_cancel(&self) {
        self.cancel.cancelled().await;
    }

    async fn stop(
        &self,
        status: &'static str,
        reason: &str,
        text: Option<String>,
    ) -> Result<(), Failure> {
        self.settle().await?;
        end(&self.ctx, &self.run.id, status, reason, text, None).await?;
        Ok(())
    }

    /// A cancel: the run's calls still `started` are marked `cancelled`.
    async fn cancel_started_tools(&self) -> Result<(), Failure> {
        let (id, now) = (self.run.id.clone(), self.ctx.clock.now());
        db::query(&self.ctx.jobs_pool, move |c| {
            store::cancel_started_tools(c, &id, now)
        })
        .await?;
        Ok(())
    }

    /// Waits for the writes in flight; a failed one fails this claim (the run is retried, and
    /// resumes from what was written).
    async fn settle(&self) -> Result<(), Failure> {
        self.writes.settle().await.map_err(Failure::Retry)
    }

    /// A write in flight that has already failed, without waiting for the others: checked
    /// before each model call, so a claim whose writes fail stops within a turn.
    fn failed_write(&self) -> Result<(), Failure> {
        self.writes
            .failure()
            .map_or(Ok(()), |e| Err(Failure::Retry(e)))
    }

    /// Records a finished tool call on a task of its own, after `after` (its `started` row's
    /// write), so the next model call need not wait for the commit; [`Self::settle`] waits for
    /// it.
    fn write_tool_result(
        &self,
        after: &Write,
        id: &str,
        status: &'static str,
        content: Value,
        ms: i32,
    ) {
        let (run, tid, now) = (self.run.id.clone(), id.to_owned(), self.ctx.clock.now());
        let session = self.session();
        self.writes.spawn(true, Some(after.clone()), move |c| {
            let out = store::ToolOutcome {
                run: &run,
                tool_use_id: &tid,
                status,
                content: &content,
                duration_ms: Some(ms),
            };
            store::finish_tool(c, &out, session, store::Commit::Lazy, now)
        });
    }

    /// How a model step is committed: flushed when a tool it asks for may change something,
    /// so that such a tool never runs on a step a PostgreSQL crash could still lose.
    fn commit_for(&self, tools: &[NewStep]) -> store::Commit {
        commit_before(&self.table, tools)
    }

    /// The `started` step rows of a model message's tool calls.
    fn tool_steps(&self, uses: &[(String, String, Value)], turn: i32) -> Vec<NewStep> {
        started_steps(&self.run.id, uses, turn, self.ctx.clock.now())
    }

    /// How a model message ends the run, if it does: status, stop reason and final text. A
    /// message asking for tools ends it when it asks the user, or when the turns or the token
    /// budget are spent.
    fn ending_of(
        &self,
        message: &[Value],
        stop_reason: Option<&str>,
    ) -> Option<(&'static str, String, Option<String>)> {
        let final_text = || Some(text_of(message)).filter(|t| !t.is_empty());
        match stop_reason {
            Some("tool_use") => {
                if let Some(question) = self.question(message) {
                    Some(("completed", AWAITING_INPUT.to_owned(), Some(question)))
                } else if self.turn >= self.options.max_turns {
                    Some(("stopped", "max_turns".to_owned(), final_text()))
                } else if self.over_budget() {
                    Some(("stopped", "token_budget".to_owned(), final_text()))
                } else {
                    None
                }
            }
            Some("pause_turn") => None,
            other => Some((
                "completed",
                other.unwrap_or("end_turn").to_owned(),
                final_text(),
            )),
        }
    }

    async fn run_loop(
        &mut self,
        mut last: Option<(Vec<Value>, Option<String>)>,
        steps: &[StepRow],
    ) -> Result<(), Failure> {
        let max_turns = self.options.max_turns;
        let mut known: Vec<StepRow> = steps.iter().filter(|s| s.kind == "tool").cloned().collect();
        loop {
            if let Some((content, reason)) = last.take() {
                let final_text = || Some(text_of(&content)).filter(|t| !t.is_empty());
                match reason.as_deref() {
                    Some("tool_use") => {
                        if let Some(question) = self.question(&content) {
                            // The run ends here; the user's answer starts one continuing it.
                            return self.stop("completed", AWAITING_INPUT, Some(question)).await;
                        }
                        if self.turn >= max_turns {
                            return self.stop("stopped", "max_turns", final_text()).await;
                        }
                        if self.over_budget() {
                            return self.stop("stopped", "token_budget", final_text()).await;
                        }
                        if self.cancel_requested() {
                            // Calls recorded `started` with the message never ran (its write
                            // may still be in flight).
                            self.settle().await?;
                            self.cancel_started_tools().await?;
                            return self.stop("cancelled", "cancelled", final_text()).await;
                        }
                        let (results, tools_took) = tokio::select! {
                            r = self.execute_tools(&content, &known) => r?,
                            _ = self.watch_cancel() => {
                                self.settle().await?;
                                self.cancel_started_tools().await?;
                                return self.stop("cancelled", "cancelled", final_text()).await;
                            }
                        };
                        self.prestarted = false;
                        self.clock.waited += tools_took;
                        known.clear();
                        self.messages
                            .push(json!({ "role": "user", "content": results }));
                    }
                    Some("pause_turn") => {}
                    other => {
                        let reason = other.unwrap_or("end_turn").to_owned();
                        return self.stop("completed", &reason, final_text()).await;
                    }
                }
            }
            if self.turn >= max_turns {
                return self.stop("stopped", "max_turns", None).await;
            }
            if self.over_budget() {
                return self.stop("stopped", "token_budget", None).await;
            }
            if self.cancel_requested() {
                return self.stop("cancelled", "cancelled", None).await;
            }
            self.failed_write()?;
            let turn = self.turn + 1;
            let called = tokio::select! {
                r = self.call_model(turn, self.writes.settling()) => match r {
                    (Ok(r), took, tail) => Ok((r, took, tail)),
                    (Err(e), _, tail) => {
                        // After the writes it follows, and not at all if one failed.
                        if let Some(tail) = tail
                            && self.writes.settling().await.is_ok()
                        {
                            record_event(&self.ctx, &self.run.id, "text_delta", tail).await;
                        }
                        Err(e)
                    }
                },
                _ = self.watch_cancel() => {
                    return self.stop("cancelled", "cancelled", None).await;
                }
            };
            let (response, tail) = match called {
                Ok((r, took, tail)) => {
                    self.clock.waited += took;
                    (r, tail)
                }
                Err(e) if e.retryable() => return Err(Failure::Retry(e.to_string())),
                Err(e) => return Err(Failure::Fatal(e.to_string())),
            };
            let message = response.message;
            let step = NewStep {
                run_id: self.run.id.clone(),
                turn,
                kind: "model".into(),
                status: "ok".into(),
                content: Some(Value::Array(message.content.clone())),
                stop_reason: message.stop_reason.clone(),
                usage: Some(message.raw_usage.clone()),
                request_id: response.request_id.clone(),
                tool_use_id: None,
                tool_name: None,
                input: None,
                started_at: self.ctx.clock.now(),
                finished_at: Some(self.ctx.clock.now()),
                duration_ms: None,
            };
            let usage = message.usage;
            self.usage.input_tokens += usage.input_tokens;
            self.usage.output_tokens += usage.output_tokens;
            self.usage.cache_creation_input_tokens += usage.cache_creation_input_tokens;
            self.usage.cache_read_input_tokens += usage.cache_read_input_tokens;
            self.turn = turn;
            // A message that ends the run is recorded with the run's end, and the tool calls
            // of one that goes on are recorded `started` with it: one commit per model step.
            // A crash after it reports those calls as interrupted, never runs them.
            let ending = self.ending_of(&message.content, message.stop_reason.as_deref());
            let tools = match (&ending, message.stop_reason.as_deref()) {
                (None, Some("tool_use")) => self.tool_steps(&tool_uses(&message.content), turn),
                _ => Vec::new(),
            };
            self.prestarted = !tools.is_empty();
            let commit = self.commit_for(&tools);
            let (now, session) = (self.ctx.clock.now(), self.session());
            let (end_of, seen) = (ending.clone(), self.cancel_seen.clone());
            let record = move |c: &mut diesel::PgConnection| {
                let end = end_of.as_ref().map(|(status, reason, text)| Ending {
                    status,
                    stop_reason: reason,
                    final_text: text.as_deref(),
                    error: None,
                });
                let m = ModelStep {
                    step: &step,
                    usage: &usage,
                    tail: tail.as_ref(),
                    tools: &tools,
                    commit,
                    ending: end.as_ref(),
                    session,
                };
                if store::record_model_step(c, &m, now)? {
                    seen.store(true, Ordering::Relaxed);
                }
                Ok(())
            };
            if commit == store::Commit::Lazy && ending.is_none() {
                // Until it lands, nothing outside the database acts on this step but its
                // read-only tools and the next model call, both harmless to repeat: it is
                // written aside, after the writes before it, and the loop goes on.
                self.writes.spawn(true, Some(self.writes.barrier()), record);
            } else {
                // The previous turn's tool results first: they precede this step.
                let db_started = Instant::now();
                self.settle().await?;
                db::query_in_place(&self.ctx.jobs_pool, record).await?;
                self.clock.db += db_started.elapsed();
                self.ctx.agent_events.nudge(&self.run.id);
            }
            self.clock.turn();
            if ending.is_some() {
                return Ok(());
            }
            self.messages
                .push(json!({ "role": "assistant", "content": message.content }));
            last = Some((message.content, message.stop_reason));
        }
    }

    /// The model's answer and how long its stream took (the request's own time).
    /// `before` is the previous turn's tool-result writes: no delta of this turn is written
    /// ahead of them.
    async fn call_model(
        &self,
        turn: i32,
        before: BoxFuture<'static, Result<(), String>>,
    ) -> (
        Result<crate::connectors::anthropic::Response, AnthropicError>,
        Duration,
        Option<Value>,
    ) {
        let req = Request {
            model: self.run.model.clone(),
            max_tokens: self.ctx.config.connectors.anthropic.max_tokens,
            system: self.options.system.clone(),
            messages: self.messages.clone(),
            tools: self.model_tools.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.ctx.anthropic.clone();
        let call = async move {
            let started = Instant::now();
            let r = client.stream(&req, Some(&tx)).await;
            let took = started.elapsed();
            drop(tx);
            (r, took)
        };
        let ((result, took), tail) = tokio::join!(
            call,
            pump(self.ctx.clone(), self.run.id.clone(), turn, rx, before)
        );
        (result, took, tail)
    }

    /// Runs the message's tool calls (all at once), each recorded before it starts (with its
    /// message, as a rule) and after it ends (on a task of its own); returns the `tool_result` blocks in the order of the calls, and the time spent
    /// awaiting tools (the longest call: they run at once).
    async fn execute_tools(
        &self,
        content: &[Value],
        known: &[StepRow],
    ) -> Result<(Vec<Value>, Duration), Failure> {
        let uses = tool_uses(content);
        // Calls recorded with their message in this claim need no write here. A resumed run's
        // message may have calls without a row (recorded by an older version) and calls cut
        // off by the crash (`started`: reported as interrupted, not run again).
        if !self.prestarted {
            let known_id = |id: &str| known.iter().find(|s| s.tool_use_id.as_deref() == Some(id));
            let unrecorded: Vec<_> = uses
                .iter()
                .filter(|(id, _, _)| known_id(id).is_none())
                .cloned()
                .collect();
            let fresh = self.tool_steps(&unrecorded, self.turn);
            let interrupted: Vec<String> = uses
                .iter()
                .filter(|(id, _, _)| known_id(id).is_some_and(|s| s.status == "started"))
                .map(|(id, _, _)| id.clone())
                .collect();
            if !fresh.is_empty() || !interrupted.is_empty() {
                let (run_id, now) = (self.run.id.clone(), self.ctx.clock.now());
                let session = self.session();
                let content = json!([tools::text(INTERRUPTED)]);
                db::query(&self.ctx.jobs_pool, move |c| {
                    c.transaction(|c| {
                        store::record_tools_started(c, &fresh, now)?;
                        for id in &interrupted {
                            let out = store::ToolOutcome {
                                run: &run_id,
                                tool_use_id: id,
                                status: "interrupted",
                                content: &content,
                                duration_ms: None,
                            };
                            store::finish_tool(c, &out, session, store::Commit::Durable, now)?;
                        }
                        Ok(())
                    })
                })
                .await?;
                self.ctx.agent_events.nudge(&self.run.id);
            }
        }
        let timeout = Duration::from_secs(self.ctx.config.connectors.agents.tool_timeout_secs);
        // A result follows its call's `started` row, which may still be in flight.
        let after = &self.writes.barrier();
        let calls = uses.iter().map(|(id, name, input)| async move {
            if let Some(s) = known
                .iter()
                .find(|s| s.tool_use_id.as_deref() == Some(id.as_str()))
            {
                let content = if s.status == "started" {
                    json!([tools::text(INTERRUPTED)])
                } else {
                    s.content.clone().unwrap_or_else(|| json!([]))
                };
                return (tool_result(id, s.status != "ok", content), Duration::ZERO);
            }
            let entry = self.table.iter().find(|t| t.name == *name);
            let started = Instant::now();
            let out = tools::execute(
                &self.ctx,
                &self.run.owner_id,
                entry,
                name,
                input.clone(),
                timeout,
            )
            .await;
            let took = started.elapsed();
            let content = Value::Array(out.content);
            let status = if out.is_error { "error" } else { "ok" };
            self.write_tool_result(after, id, status, content.clone(), out.duration_ms);
            (tool_result(id, out.is_error, content), took)
        });
        let mut results = Vec::with_capacity(uses.len());
        let mut longest = Duration::ZERO;
        for (result, took) in futures_util::future::join_all(calls).await {
            longest = longest.max(took);
            results.push(result);
        }
        Ok((results, longest))
    }
}

/// [`Loop::tool_steps`].
fn started_steps(
    run: &str,
    uses: &[(String, String, Value)],
    turn: i32,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<NewStep> {
    uses.iter()
        .map(|(id, name, input)| NewStep {
            run_id: run.to_owned(),
            turn,
            kind: "tool".into(),
            status: "started".into(),
            content: None,
            stop_reason: None,
            usage: None,
            request_id: None,
            tool_use_id: Some(id.clone()),
            tool_name: Some(name.clone()),
            input: Some(input.clone()),
            started_at: now,
            finished_at: None,
            duration_ms: None,
        })
        .collect()
}

/// [`Loop::commit_for`]: a tool not in the table is never called (the model hears it is
/// unknown), so only tools in the table and not read-only need the flush.
fn commit_before(table: &[ToolEntry], tools: &[NewStep]) -> store::Commit {
    let changes = |s: &NewStep| {
        table
            .iter()
            .any(|t| Some(t.name.as_str()) == s.tool_name.as_deref() && !t.read_only)
    };
    if tools.iter().any(changes) {
        store::Commit::Durable
    } else {
        store::Commit::Lazy
    }
}

/// Records an event the run can lose in a crash (deltas, retries) without waiting for the WAL
/// flush; a failure is logged, not the run's.
async fn record_event(ctx: &Arc<Ctx>, run: &str, kind: &'static str, data: Value) {
    let (run, now) = (run.to_owned(), ctx.clock.now());
    if let Err(e) = db::query(&ctx.jobs_pool, move |c| {
        store::add_event_async_commit(c, &run, kind, &data, now)
    })
    .await
    {
        tracing::warn!(error = %e, "recording an agent event failed");
    }
}

/// Passes text deltas on as `text_delta` events, a few per second at most per block rather than
/// one row per token. Returns the last delta not yet written, for the model step's commit.
async fn pump(
    ctx: Arc<Ctx>,
    run: String,
    turn: i32,
    mut rx: mpsc::UnboundedReceiver<Delta>,
    before: BoxFuture<'static, Result<(), String>>,
) -> Option<Value> {
    const MAX_BUF: usize = 512;
    const MAX_WAIT: Duration = Duration::from_millis(100);
    let mut buf = String::new();
    let mut index = 0usize;
    let mut since = Instant::now();
    // Waited for once, before the first write (a failed one is the loop's to report).
    let before = before.shared();
    let flush = |kind: &'static str, data: Value| {
        let before = before.clone();
        let ctx = &ctx;
        let run = &run;
        async move {
            // A failed write before it fails the claim: a delta after it would be replayed.
            if before.await.is_ok() {
                record_event(ctx, run, kind, data).await;
            }
        }
    };
    loop {
        let next = if buf.is_empty() {
            rx.recv().await
        } else {
            let left = MAX_WAIT.saturating_sub(since.elapsed());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    flush(
                        "text_delta",
                        json!({"turn": turn, "index": index, "text": std::mem::take(&mut buf)}),
                    )
                    .await;
                    continue;
                }
            }
        };
        match next {
            None => {
                return (!buf.is_empty())
                    .then(|| json!({"turn": turn, "index": index, "text": buf}));
            }
            Some(Delta::Text { index: i, text }) => {
                if i != index && !buf.is_empty() {
                    flush(
                        "text_delta",
                        json!({"turn": turn, "index": index, "text": std::mem::take(&mut buf)}),
                    )
                    .await;
                }
                if buf.is_empty() {
                    since = Instant::now();
                }
                index = i;
                buf.push_str(&text);
                if buf.len() >= MAX_BUF {
                    flush(
                        "text_delta",
                        json!({"turn": turn, "index": index, "text": std::mem::take(&mut buf)}),
                    )
                    .await;
                }
            }
            Some(Delta::Retry { attempt }) => {
                if !buf.is_empty() {
                    flush(
                        "text_delta",
                        json!({"turn": turn, "index": index, "text": std::mem::take(&mut buf)}),
                    )
                    .await;
                }
                flush("model_retry", json!({"turn": turn, "attempt": attempt})).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(names: &[&str]) -> Vec<NewStep> {
        let uses: Vec<_> = names
            .iter()
            .map(|n| (format!("toolu_{n}"), (*n).to_owned(), json!({})))
            .collect();
        started_steps("run_1", &uses, 1, chrono::Utc::now())
    }

    #[test]
    fn only_a_tool_that_may_change_something_needs_the_flush_first() {
        // A table stored before `read_only` existed reads as "may change something".
        let table: Vec<ToolEntry> = serde_json::from_value(json!([
            {"name": "s__read", "server_id": "s", "tool": "read", "input_schema": {}, "read_only": true},
            {"name": "s__write", "server_id": "s", "tool": "write", "input_schema": {}},
        ]))
        .unwrap();
        let lazy = store::Commit::Lazy;
        let durable = store::Commit::Durable;
        assert_eq!(
            commit_before(&table, &[]),
            lazy,
            "no tool: an answer or the end"
        );
        assert_eq!(commit_before(&table, &calls(&["s__read"])), lazy);
        assert_eq!(
            commit_before(&table, &calls(&["nope"])),
            lazy,
            "never called"
        );
        assert_eq!(commit_before(&table, &calls(&["s__write"])), durable);
        assert_eq!(
            commit_before(&table, &calls(&["s__read", "s__write"])),
            durable
        );
    }

    #[test]
    fn only_a_literal_read_only_hint_counts() {
        let view = |annotations: Value| {
            crate::connectors::mcp::models::ToolView::new(
                "s",
                &json!({"name": "t", "annotations": annotations}),
            )
            .unwrap()
            .read_only()
        };
        assert!(view(json!({"readOnlyHint": true})));
        assert!(!view(json!({"readOnlyHint": "true"})));
        assert!(!view(
            json!({"readOnlyHint": false, "idempotentHint": true})
        ));
        assert!(!view(json!(null)));
    }
}
