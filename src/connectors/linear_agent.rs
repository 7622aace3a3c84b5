//! Linear agent sessions (spec §2.3): an `AgentSessionEvent` delivery for a connection made
//! with our app user becomes a `linear_agent_session` job. `created` posts a `thought` at once
//! (Linear marks a session unresponsive without an activity within 10 s), then starts an agent
//! run owned by the connection's owner with the prompt Linear prepared; `prompted` starts a run
//! continuing the conversation, or, with the `stop` signal, cancels the session's run. When a
//! session's run ends, a `linear_agent_reply` job mirrors its tool calls as `action`
//! activities and posts the final `response` (or `error`).
//!
//! Every activity is sent with an id derived from what it answers (session and delivery, run
//! and tool call), recorded once posted: a retried job skips what it already posted, and if it
//! died between Linear's answer and the record, Linear sees the same id again.
//!
//! A session's run may ask its user: it is offered an [`ASK_USER`] tool; calling it ends the
//! run (stop reason `awaiting_input`) and its reply is an `elicitation` activity (Linear shows
//! the session awaiting input). The user's `prompted` answer starts a run that continues the
//! same conversation: the earlier run's messages, then the answer as that call's
//! `tool_result`. With `connectors.agents.run_page_url` set, each run started for a session is
//! linked from it (`agentSessionUpdate` `externalUrls`), so the user can watch it stream.
//!
//! Signals on a user's `prompted` activity (SDK `AgentActivitySignal`): `stop` cancels the
//! session's run at once and a final activity follows. `auth`, `select` and `continue` are
//! signals an agent puts on its own activities (asking the user to link an account, to pick
//! from options, keeping a response from ending the session); should one arrive on a user's
//! prompt it carries no instruction for us, so the prompt is answered as an ordinary follow-up
//! (logged). We send none of them: runs act with the workspace's app token (nothing for a user
//! to link), questions are free text, and a `response` is meant to end the session.

use super::ConnectionId;
use super::Ctx;
use super::agents::models::{RunRow, StepRow};
use super::agents::{self, AgentsError, service, store as runs};
use crate::db::ids::UserId;
use crate::db::schema::{
    linear_agent_activities, linear_agent_session_runs, linear_agent_sessions,
};
use crate::db::{self, DbError};
use crate::jobs::{EnqueueOpts, Job, JobError, enqueue};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) const SESSION_KIND: &str = "linear_agent_session";
pub(crate) const REPLY_KIND: &str = "linear_agent_reply";

const ACTIVITY_MUTATION: &str = "mutation SwitchboardAgentActivity($input: AgentActivityCreateInput!) { agentActivityCreate(input: $input) { success agentActivity { id } } }";

const ISSUE_QUERY: &str = "query SwitchboardDelegatedIssue($id: String!) { issue(id: $id) { id delegate { id } state { type } team { states { nodes { id type position } } } } }";

const SESSION_UPDATE: &str = "mutation SwitchboardSessionUrls($id: String!, $input: AgentSessionUpdateInput!) { agentSessionUpdate(id: $id, input: $input) { success } }";

/// The built-in tool a session's run may call to ask its user a question.
pub(crate) const ASK_USER: &str = "ask_user";

/// [`ASK_USER`] as the model is offered it. Its name has no `__`, so no MCP tool (named
/// `<server>__<tool>`) can take it.
pub(crate) fn ask_user_tool() -> Value {
    json!({
        "name": ASK_USER,
        "description": "Ask the Linear user who started this session a question and wait for \
            their answer. Use it only when you cannot go on without something only they know. \
            Your turn ends with the question; their answer comes back as this tool's result.",
        "input_schema": {
            "type": "object",
            "properties": {"question": {"type": "string", "description": "The question, in Markdown."}},
            "required": ["question"],
        },
    })
}

const ISSUE_UPDATE: &str = "mutation SwitchboardStartIssue($id: String!, $stateId: String!) { issueUpdate(id: $id, input: { stateId: $stateId }) { success } }";

/// Longest `parameter`/`result` text mirrored into an `action` activity.
const MAX_ACTION_TEXT: usize = 2000;

/// The idempotency id of one activity: a UUID (v4 layout, as Linear validates it) derived from
/// `key`, so the same activity always gets the same id.
pub fn activity_id(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("switchboard/linear-activity\0{key}").as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[derive(QueryableByName)]
struct Target {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Inside the routing transaction of a stored Linear delivery: an `AgentSessionEvent` for a
/// connection of this workspace's app user gets its session job. Returns how many were queued.
pub(crate) fn enqueue_for_event(
    conn: &mut PgConnection,
    event_id: i64,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    let text = |p: &str| payload.pointer(p).and_then(Value::as_str);
    let (Some(org), Some(app_user)) = (
        text("/organizationId"),
        text("/appUserId").or_else(|| text("/agentSession/appUserId")),
    ) else {
        return Ok(0);
    };
    let target: Option<Target> = crate::db::prepared(
        "SELECT id FROM connections WHERE provider = 'linear' AND external_org_id = $1 \
         AND external_account_id = $2 AND status <> 'revoked' ORDER BY created_at, id LIMIT 1",
    )
    .bind::<Text, _>(org)
    .bind::<Text, _>(app_user)
    .get_result(conn)
    .optional()?;
    let Some(target) = target else {
        return Ok(0);
    };
    enqueue(
        conn,
        now,
        SESSION_KIND,
        &json!({ "event_id": event_id, "connection_id": target.id }),
        &EnqueueOpts {
            dedupe_key: Some(format!("{event_id}:{}", target.id)),
            // Runs before the routine work so the first thought makes Linear's 10 s.
            priority: 10,
            ..EnqueueOpts::default()
        },
    )?;
    Ok(1)
}

/// Inside the transaction that ends a run: a run answering a session gets its reply job
/// (its remaining actions, then the final activity).
pub(crate) fn on_run_end(
    conn: &mut PgConnection,
    run: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    enqueue_reply(conn, run, now, "final")
}

/// Inside the transaction that records a finished tool call: a run answering a session gets a
/// job mirroring its finished calls as `action` activities while it goes on. One is queued at
/// a time per run; a call finishing while it runs is posted by the next one or the final one.
pub(crate) fn on_tool_finished(
    conn: &mut PgConnection,
    run: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    enqueue_reply(conn, run, now, "actions")
}

fn enqueue_reply(
    conn: &mut PgConnection,
    run: &str,
    now: DateTime<Utc>,
    what: &str,
) -> QueryResult<()> {
    let linked: i64 = linear_agent_session_runs::table
        .filter(linear_agent_session_runs::run_id.eq(run))
        .count()
        .get_result(conn)?;
    if linked == 0 {
        return Ok(());
    }
    enqueue(
        conn,
        now,
        REPLY_KIND,
        &json!({ "run_id": run, "final": what == "final" }),
        &EnqueueOpts {
            dedupe_key: Some(format!("{run}:{what}")),
            priority: 10,
            ..EnqueueOpts::default()
        },
    )
    .map(drop)
    .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
}

// --- the GraphQL activity client ------------------------------------------------------------

/// One activity to post.
struct Activity<'a> {
    connection_id: &'a str,
    session_id: &'a str,
    id: String,
    kind: &'static str,
    content: Value,
    /// Replaced by the next activity in Linear's UI (thoughts and actions only).
    ephemeral: bool,
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::retry(e.to_string())
}

/// One GraphQL call with the connection's token; returns `data`. Errors are worth a retry
/// (the job's attempts bound them).
async fn graphql(
    ctx: &Arc<Ctx>,
    connection_id: &str,
    query: &str,
    variables: Value,
) -> Result<Value, JobError> {
    let token = super::refresh::access_token(ctx, &ConnectionId(connection_id.to_owned()))
        .await
        .map_err(retry)?;
    let response = ctx
        .http
        .post(&ctx.config.connectors.providers.linear.graphql_url)
        .bearer_auth(token.expose())
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .map_err(|e| retry(format!("Linear GraphQL unreachable: {e}")))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|_| retry(format!("Linear GraphQL answered {status} without JSON")))?;
    let errors = body
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if !status.is_success() || errors {
        let code = body
            .pointer("/errors/0/extensions/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(retry(format!(
            "Linear GraphQL failed: HTTP {status} {code}"
        )));
    }
    Ok(body.get("data").cloned().unwrap_or(Value::Null))
}

/// Posts an activity unless one with its id was posted already; records it when Linear
/// accepted it.
async fn post(ctx: &Arc<Ctx>, a: Activity<'_>) -> Result<(), JobError> {
    let id = a.id.clone();
    let seen: i64 = db::query(&ctx.jobs_pool, move |c| {
        linear_agent_activities::table
            .find(&id)
            .count()
            .get_result(c)
    })
    .await?;
    if seen > 0 {
        return Ok(());
    }
    let mut input = json!({ "id": a.id, "agentSessionId": a.session_id, "content": a.content });
    if a.ephemeral {
        input["ephemeral"] = json!(true);
    }
    let data = graphql(
        ctx,
        a.connection_id,
        ACTIVITY_MUTATION,
        json!({ "input": input }),
    )
    .await?;
    if data
        .pointer("/agentActivityCreate/success")
        .and_then(Value::as_bool)
        != Some(true)
    {
        return Err(retry("agentActivityCreate did not succeed"));
    }
    let (id, session, kind, now) = (a.id, a.session_id.to_owned(), a.kind, ctx.clock.now());
    db::query(&ctx.jobs_pool, move |c| {
        diesel::insert_into(linear_agent_activities::table)
            .values((
                linear_agent_activities::id.eq(&id),
                linear_agent_activities::session_id.eq(&session),
                linear_agent_activities::kind.eq(kind),
                linear_agent_activities::posted_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .map(drop)
    })
    .await?;
    tracing::info!(session_id = %a.session_id, kind, "Linear agent activity posted");
    Ok(())
}

// --- the session job --------------------------------------------------------------------

#[derive(QueryableByName)]
struct Delivery {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: Value,
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = Text)]
    owner_id: UserId,
}

/// What `guidance` holds: a string, or rules with a `body` each.
fn guidance_text(v: Option<&Value>) -> Option<String> {
    let text = match v? {
        Value::String(s) => s.clone(),
        Value::Array(rules) => rules
            .iter()
            .filter_map(|r| r.get("body").and_then(Value::as_str).or_else(|| r.as_str()))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => return None,
    };
    Some(text).filter(|t| !t.trim().is_empty())
}

fn system_prompt(guidance: Option<String>) -> String {
    let mut s = "You are an agent working inside Linear, answering the user who mentioned you or \
                 delegated an issue to you. Answer in Markdown."
        .to_owned();
    if let Some(g) = guidance {
        s.push_str("\n\nGuidance from the workspace and team:\n");
        s.push_str(&g);
    }
    s
}

pub(crate) async fn run_session(ctx: Arc<Ctx>, job: Job) -> Result<(), JobError> {
    let (Some(event_id), Some(connection_id)) = (
        job.payload.get("event_id").and_then(Value::as_i64),
        job.payload
            .get("connection_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
    ) else {
        return Err(JobError::permanent("payload has no event_id/connection_id"));
    };
    if ctx.config.connectors.providers.linear.actor != crate::connectors::config::LinearActor::App {
        // Agent sessions belong to an app user: connections made as users never answer them.
        tracing::warn!(
            event_id,
            "AgentSessionEvent ignored: connectors.providers.linear.actor is not \"app\""
        );
        return Ok(());
    }
    let cid = connection_id.clone();
    let found = db::query(&ctx.jobs_pool, move |c| {
        let d: Option<Delivery> =
            crate::db::prepared("SELECT payload FROM webhook_events WHERE id = $1")
                .bind::<BigInt, _>(event_id)
                .get_result(c)
                .optional()?;
        let o: Option<Owner> =
            crate::db::prepared("SELECT owner_id FROM connections WHERE id = $1")
                .bind::<Text, _>(&cid)
                .get_result(c)
                .optional()?;
        Ok(d.zip(o))
    })
    .await?;
    let Some((Delivery { payload }, Owner { owner_id })) = found else {
        return Ok(()); // pruned or disconnected since
    };
    let Some(session_id) = payload
        .pointer("/agentSession/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(JobError::permanent("the event has no agentSession.id"));
    };
    let issue = payload
        .pointer("/agentSession/issue/id")
        .or_else(|| payload.pointer("/agentSession/issueId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let now = ctx.clock.now();
    let (sid, cid, oid) = (session_id.clone(), connection_id.clone(), owner_id.clone());
    db::query(&ctx.jobs_pool, move |c| {
        diesel::insert_into(linear_agent_sessions::table)
            .values((
                linear_agent_sessions::id.eq(&sid),
                linear_agent_sessions::connection_id.eq(&cid),
                linear_agent_sessions::owner_id.eq(&oid),
                linear_agent_sessions::issue_id.eq(issue),
                linear_agent_sessions::created_at.eq(now),
                linear_agent_sessions::updated_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .map(drop)
    })
    .await?;
    let s = Session {
        ctx: &ctx,
        event_id,
        connection_id: &connection_id,
        owner_id: &owner_id,
        session_id: &session_id,
    };
    match payload.get("action").and_then(Value::as_str) {
        Some("created") => {
            s.post(
                &format!("thought:{event_id}"),
                "thought",
                json!({ "type": "thought", "body": "Looking into it…" }),
            )
            .await?;
            if let Some(issue) = payload
                .pointer("/agentSession/issue/id")
                .or_else(|| payload.pointer("/agentSession/issueId"))
                .and_then(Value::as_str)
            {
                let app_user = payload
                    .get("appUserId")
                    .or_else(|| payload.pointer("/agentSession/appUserId"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                s.start_delegated(issue, app_user).await?;
            }
            let prompt = payload
                .get("promptContext")
                .and_then(Value::as_str)
                .filter(|p| !p.trim().is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    payload
                        .pointer("/agentSession/comment/body")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "(Linear sent no prompt context.)".to_owned());
            let system = system_prompt(guidance_text(payload.get("guidance")));
            s.start_run(prompt, system, None).await
        }
        Some("prompted") => {
            let activity = payload.get("agentActivity").cloned().unwrap_or(Value::Null);
            match activity.get("signal").and_then(Value::as_str) {
                Some("stop") => return s.stop().await,
                // Agent-side signals (see the module's notes): the prompt is a follow-up.
                Some(other) => tracing::info!(
                    session_id = %session_id,
                    signal = other,
                    "Linear agent session: signal on a prompt ignored; answered as a follow-up"
                ),
                None => {}
            }
            let body = activity
                .get("body")
                .or_else(|| activity.pointer("/content/body"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            s.follow_up(body, guidance_text(payload.get("guidance")))
                .await
        }
        _ => Ok(()),
    }
}

struct Session<'a> {
    ctx: &'a Arc<Ctx>,
    event_id: i64,
    connection_id: &'a str,
    owner_id: &'a UserId,
    session_id: &'a str,
}

impl Session<'_> {
    async fn post(&self, key: &str, kind: &'static str, content: Value) -> Result<(), JobError> {
        post(
            self.ctx,
            Activity {
                connection_id: self.connection_id,
                session_id: self.session_id,
                id: activity_id(&format!("{}:{key}", self.session_id)),
                kind,
                content,
                // The first "looking into it" thought only holds the session until real work
                // shows: the next activity replaces it.
                ephemeral: kind == "thought",
            },
        )
        .await
    }

    /// The session's latest run.
    async fn current_run(&self) -> Result<Option<RunRow>, JobError> {
        let sid = self.session_id.to_owned();
        Ok(db::query(&self.ctx.jobs_pool, move |c| {
            let run: Option<Option<String>> = linear_agent_sessions::table
                .find(&sid)
                .select(linear_agent_sessions::run_id)
                .first(c)
                .optional()?;
            match run.flatten() {
                Some(id) => runs::find(c, &id),
                None => Ok(None),
            }
        })
        .await?)
    }

    /// Delegated an issue not yet started, completed or canceled: it moves to its team's
    /// first `started` state (the lowest position), as Linear's guidance asks. Looked up fresh,
    /// so a retried job does nothing twice.
    async fn start_delegated(&self, issue: &str, app_user: &str) -> Result<(), JobError> {
        let data = graphql(
            self.ctx,
            self.connection_id,
            ISSUE_QUERY,
            json!({ "id": issue }),
        )
        .await?;
        let Some(issue) = data.get("issue") else {
            return Ok(());
        };
        let delegate = issue.pointer("/delegate/id").and_then(Value::as_str);
        let state = issue.pointer("/state/type").and_then(Value::as_str);
        if app_user.is_empty()
            || delegate != Some(app_user)
            || matches!(state, Some("started" | "completed" | "canceled"))
        {
            return Ok(());
        }
        let first_started = issue
            .pointer("/team/states/nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|st| st.get("type").and_then(Value::as_str) == Some("started"))
            .filter_map(|st| {
                Some((
                    st.get("position").and_then(Value::as_f64)?,
                    st.get("id").and_then(Value::as_str)?,
                ))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let (Some((_, state_id)), Some(id)) =
            (first_started, issue.get("id").and_then(Value::as_str))
        else {
            return Ok(());
        };
        graphql(
            self.ctx,
            self.connection_id,
            ISSUE_UPDATE,
            json!({ "id": id, "stateId": state_id }),
        )
        .await?;
        tracing::info!(session_id = %self.session_id, "delegated issue moved to its first started state");
        Ok(())
    }

    /// Starts the run this delivery asks for, once: a retried job finds the one it made.
    /// `conversation`: the messages it continues (an answer to an elicitation).
    async fn start_run(
        &self,
        prompt: String,
        system: String,
        conversation: Option<Vec<Value>>,
    ) -> Result<(), JobError> {
        let new = service::NewRun {
            prompt,
            system: Some(system),
            tools: None,
            model: None,
            max_turns: None,
            max_tokens_budget: None,
            // The workspace's own Linear MCP tools, with this session's connection token.
            connection: Some(super::agents::models::ToolConnection {
                provider: "linear".into(),
                connection_id: self.connection_id.to_owned(),
            }),
            conversation,
        };
        let row = match service::prepare(self.ctx, self.owner_id, new) {
            Ok(row) => row,
            Err(e) => return self.refused(e).await,
        };
        let (ctx, sid, event_id) = (self.ctx.clone(), self.session_id.to_owned(), self.event_id);
        let started = db::run(&self.ctx.jobs_pool, move |c| {
            c.transaction::<_, AgentsError, _>(|c| {
                let done: i64 = linear_agent_session_runs::table
                    .filter(linear_agent_session_runs::session_id.eq(&sid))
                    .filter(linear_agent_session_runs::event_id.eq(event_id))
                    .count()
                    .get_result(c)?;
                if done > 0 {
                    return Ok(());
                }
                service::insert_in(c, &ctx, &row)?;
                diesel::insert_into(linear_agent_session_runs::table)
                    .values((
                        linear_agent_session_runs::run_id.eq(&row.id),
                        linear_agent_session_runs::session_id.eq(&sid),
                        linear_agent_session_runs::event_id.eq(event_id),
                        linear_agent_session_runs::created_at.eq(row.created_at),
                    ))
                    .execute(c)?;
                diesel::update(linear_agent_sessions::table.find(&sid))
                    .set((
                        linear_agent_sessions::run_id.eq(&row.id),
                        linear_agent_sessions::updated_at.eq(row.created_at),
                    ))
                    .execute(c)?;
                Ok(())
            })
        })
        .await;
        match started {
            Ok(()) => {
                self.ctx.jobs_wake.notify_one();
                self.link_runs().await;
                Ok(())
            }
            Err(AgentsError::Connectors(e)) => Err(retry(e)),
            Err(e) => self.refused(e).await,
        }
    }

    /// A run that could not start (not configured, limits, bad input): an `error` activity.
    async fn refused(&self, e: AgentsError) -> Result<(), JobError> {
        tracing::warn!(session_id = %self.session_id, error = %e, "Linear agent session: no run started");
        self.post(
            &format!("refused:{}", self.event_id),
            "error",
            json!({ "type": "error", "body": format!("I could not start working on this: {e}.") }),
        )
        .await
    }

    /// Links the session to the pages of its runs in our web app (`externalUrls`, the latest
    /// first), when `connectors.agents.run_page_url` is set. Setting the list again is
    /// harmless, so a retried job just does it again; a failure is logged, not retried: the
    /// link is a convenience, and the activities are what Linear needs.
    async fn link_runs(&self) {
        let Some(page) = self.ctx.config.connectors.agents.run_page_url.clone() else {
            return;
        };
        let sid = self.session_id.to_owned();
        let runs = db::query(&self.ctx.jobs_pool, move |c| {
            linear_agent_session_runs::table
                .filter(linear_agent_session_runs::session_id.eq(&sid))
                // The delivery's id breaks ties: run ids are random, and two runs may share a
                // timestamp.
                .order((
                    linear_agent_session_runs::created_at.desc(),
                    linear_agent_session_runs::event_id.desc(),
                ))
                .select(linear_agent_session_runs::run_id)
                .limit(10)
                .load::<String>(c)
        })
        .await;
        let runs = match runs {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(session_id = %self.session_id, error = %e, "Linear agent session: reading its runs failed");
                return;
            }
        };
        let urls: Vec<Value> = runs
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let label = if i == 0 {
                    "Agent run in Switchboard".to_owned()
                } else {
                    format!("Earlier run {}", runs.len() - i)
                };
                json!({ "label": label, "url": page.replace("{id}", id) })
            })
            .collect();
        let updated = graphql(
            self.ctx,
            self.connection_id,
            SESSION_UPDATE,
            json!({ "id": self.session_id, "input": { "externalUrls": urls } }),
        )
        .await;
        match updated {
            Ok(data)
                if data
                    .pointer("/agentSessionUpdate/success")
                    .and_then(Value::as_bool)
                    == Some(true) => {}
            Ok(_) => {
                tracing::warn!(session_id = %self.session_id, "agentSessionUpdate did not succeed")
            }
            Err(e) => {
                tracing::warn!(session_id = %self.session_id, error = %e.message, "agentSessionUpdate failed")
            }
        }
    }

    /// The answer to the previous run's question: a run continuing its conversation, the
    /// answer as the `ask_user` call's result (any other call of that message was not run).
    async fn answer(&self, previous: RunRow, body: String) -> Result<(), JobError> {
        let id = previous.id.clone();
        let steps = db::query(&self.ctx.jobs_pool, move |c| runs::steps(c, &id)).await?;
        let mut messages = agents::conversation(&previous, &steps);
        let calls = messages
            .last()
            .filter(|m| m["role"] == "assistant")
            .and_then(|m| m["content"].as_array())
            .map(|c| agents::calls_of(c))
            .unwrap_or_default();
        let results: Vec<Value> = calls
            .iter()
            .map(|(id, name, _)| {
                if name == ASK_USER {
                    agents::tool_result(id, false, json!([agents::text(body.clone())]))
                } else {
                    agents::tool_result(
                        id,
                        true,
                        json!([agents::text(
                            "Not run: you asked the user first. Call it again if you still need it."
                        )]),
                    )
                }
            })
            .collect();
        if results.is_empty() {
            messages.push(json!({ "role": "user", "content": body }));
        } else {
            messages.push(json!({ "role": "user", "content": results }));
        }
        let system = previous
            .options()
            .system
            .unwrap_or_else(|| system_prompt(None));
        self.start_run(body, system, Some(messages)).await
    }

    /// A follow-up: the answer to the run's question continues its conversation; otherwise a
    /// new run whose prompt carries the conversation so far.
    async fn follow_up(&self, body: String, guidance: Option<String>) -> Result<(), JobError> {
        let previous = self.current_run().await?;
        if let Some(p) = previous
            .clone()
            .filter(|p| p.finished() && p.stop_reason.as_deref() == Some(agents::AWAITING_INPUT))
        {
            return self.answer(p, body).await;
        }
        let prompt = match previous {
            Some(p) => format!(
                "{}\n\n<your_previous_answer>\n{}\n</your_previous_answer>\n\n<follow_up>\n{body}\n</follow_up>",
                p.prompt,
                p.final_text.as_deref().unwrap_or("(no answer)")
            ),
            None => body,
        };
        self.start_run(prompt, system_prompt(guidance), None).await
    }

    /// The `stop` signal: the session's run is cancelled (its end posts the final activity);
    /// with no run going, the final activity is posted here.
    async fn stop(&self) -> Result<(), JobError> {
        let current = self.current_run().await?;
        if let Some(run) = current.filter(|r| !r.finished()) {
            let (owner, now) = (self.owner_id.to_owned(), self.ctx.clock.now());
            db::query(&self.ctx.jobs_pool, move |c| {
                runs::request_cancel(c, &run.id, &owner, now)
            })
            .await?;
            return Ok(());
        }
        self.post(
            &format!("stop:{}", self.event_id),
            "response",
            json!({ "type": "response", "body": "Stopped." }),
        )
        .await
    }
}

// --- the reply job ----------------------------------------------------------------------

#[derive(QueryableByName)]
struct Link {
    #[diesel(sql_type = Text)]
    session_id: String,
    #[diesel(sql_type = Text)]
    connection_id: String,
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_ACTION_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_ACTION_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The text of a `tool_result` content array.
fn result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match b.get("text").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => b.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn action(step: &StepRow) -> Value {
    let name = step.tool_name.as_deref().unwrap_or("tool");
    let mut v = json!({
        "type": "action",
        "action": name,
        "parameter": clip(&step.input.as_ref().map(Value::to_string).unwrap_or_default()),
    });
    let mut result = clip(&result_text(step.content.as_ref()));
    if step.status != "ok" {
        result = format!("({}) {result}", step.status);
    }
    v["result"] = json!(result);
    v
}

fn final_activity(run: &RunRow) -> (&'static str, Value) {
    let text = run.final_text.clone().filter(|t| !t.trim().is_empty());
    match run.status.as_str() {
        "completed" if run.stop_reason.as_deref() == Some(agents::AWAITING_INPUT) => (
            "elicitation",
            json!({ "type": "elicitation", "body": text.unwrap_or_else(|| "Could you tell me more?".into()) }),
        ),
        "completed" => (
            "response",
            json!({ "type": "response", "body": text.unwrap_or_else(|| "Done.".into()) }),
        ),
        "cancelled" => (
            "response",
            json!({ "type": "response", "body": "Stopped." }),
        ),
        "stopped" => (
            "error",
            json!({ "type": "error", "body": format!(
                "I stopped before finishing ({}).{}",
                run.stop_reason.as_deref().unwrap_or("limit"),
                text.map(|t| format!("\n\n{t}")).unwrap_or_default()
            )}),
        ),
        _ => (
            "error",
            json!({ "type": "error", "body": format!(
                "The run failed: {}", run.error.as_deref().unwrap_or("unknown error")
            )}),
        ),
    }
}

pub(crate) async fn run_reply(ctx: Arc<Ctx>, job: Job) -> Result<(), JobError> {
    let Some(run_id) = job
        .payload
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(JobError::permanent("payload has no run_id"));
    };
    let id = run_id.clone();
    let found = db::query(&ctx.jobs_pool, move |c| {
        let link: Option<Link> = crate::db::prepared(
            "SELECT r.session_id, s.connection_id FROM linear_agent_session_runs r \
             JOIN linear_agent_sessions s ON s.id = r.session_id WHERE r.run_id = $1",
        )
        .bind::<Text, _>(&id)
        .get_result(c)
        .optional()?;
        let run = runs::find(c, &id)?;
        let steps = runs::steps(c, &id)?;
        Ok(link.zip(run).map(|(l, r)| (l, r, steps)))
    })
    .await?;
    let Some((link, run, steps)) = found else {
        return Ok(());
    };
    // Only finished calls: an action is posted once, with its result.
    for step in steps
        .iter()
        .filter(|s| s.kind == "tool" && s.status != "started")
    {
        let Some(tool_use) = step.tool_use_id.as_deref() else {
            continue;
        };
        post(
            &ctx,
            Activity {
                connection_id: &link.connection_id,
                session_id: &link.session_id,
                id: activity_id(&format!("{run_id}:action:{tool_use}")),
                kind: "action",
                content: action(step),
                ephemeral: false,
            },
        )
        .await?;
    }
    let wants_final = job.payload.get("final").and_then(Value::as_bool) != Some(false);
    if !wants_final || !run.finished() {
        return Ok(());
    }
    let (kind, content) = final_activity(&run);
    post(
        &ctx,
        Activity {
            connection_id: &link.connection_id,
            session_id: &link.session_id,
            id: activity_id(&format!("{run_id}:final")),
            kind,
            content,
            ephemeral: false,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_ids_are_stable_distinct_v4_uuids() {
        let a = activity_id("s1:thought:1");
        assert_eq!(a, activity_id("s1:thought:1"));
        assert_ne!(a, activity_id("s1:thought:2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn guidance_is_a_string_or_rule_bodies() {
        assert_eq!(
            guidance_text(Some(&json!("Be brief"))).as_deref(),
            Some("Be brief")
        );
        assert_eq!(
            guidance_text(Some(&json!([{"body": "A"}, {"body": "B"}]))).as_deref(),
            Some("A\n\nB")
        );
        assert_eq!(guidance_text(Some(&json!([]))), None);
        assert_eq!(guidance_text(None), None);
    }
}
