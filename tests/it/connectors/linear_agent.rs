//! Linear agent sessions end to end: a signed `AgentSessionEvent` through `POST
//! /webhooks/linear`, the jobs it starts, an Anthropic stand-in, and a GraphQL stand-in (the
//! Linear provider's wiremock) that records every `agentActivityCreate` in one log shared with
//! the model's, so their order is seen: the thought before the run, actions and the response
//! after it, a `prompted` follow-up, `stop`, and retried jobs posting nothing twice.

use super::World;
use super::mcp_stand_ins::Modern;
use crate::webhooks::{LINEAR_SECRET, hmac_hex, linear_request, secrets_env};
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::jobs::Runner;
use switchboard::platform::clock::Clock;
use switchboard::platform::role::Role;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

type Log = Arc<Mutex<Vec<String>>>;

fn frames(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

fn message(blocks: &[Value], stop: &str) -> ResponseTemplate {
    let mut ev = vec![
        json!({"type": "message_start", "message": {"id": "msg_x", "type": "message",
        "role": "assistant", "content": [], "stop_reason": null,
        "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    ];
    for (i, b) in blocks.iter().enumerate() {
        if b["type"] == "text" {
            ev.push(json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}));
            ev.push(json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": b["text"]}}));
        } else {
            ev.push(json!({"type": "content_block_start", "index": i,
                "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}));
            ev.push(json!({"type": "content_block_delta", "index": i,
                "delta": {"type": "input_json_delta", "partial_json": b["input"].to_string()}}));
        }
        ev.push(json!({"type": "content_block_stop", "index": i}));
    }
    ev.push(json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 5}}));
    ev.push(json!({"type": "message_stop"}));
    ResponseTemplate::new(200).set_body_raw(frames(&ev), "text/event-stream")
}

fn answer(text: &str) -> ResponseTemplate {
    message(&[json!({"type": "text", "text": text})], "end_turn")
}

/// The model: scripted answers, each request noted in the shared log.
struct Model(Mutex<VecDeque<ResponseTemplate>>, Log);

impl Respond for Model {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.1.lock().unwrap().push("model".into());
        self.0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| ResponseTemplate::new(500).set_body_string("script ended"))
    }
}

/// Linear's GraphQL: every activity noted as `<type>` in the log and kept whole.
struct Activities(Log, Arc<Mutex<Vec<Value>>>);

impl Respond for Activities {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let input = body["variables"]["input"].clone();
        self.0
            .lock()
            .unwrap()
            .push(input["content"]["type"].as_str().unwrap_or("?").to_owned());
        self.1.lock().unwrap().push(json!({
            "input": input,
            "authorization": req.headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()),
        }));
        ResponseTemplate::new(200).set_body_json(json!({"data": {"agentActivityCreate": {
            "success": true, "agentActivity": {"id": format!("act-{}", self.1.lock().unwrap().len())}}}}))
    }
}

struct Setup {
    w: World,
    log: Log,
    posted: Arc<Mutex<Vec<Value>>>,
    _model: MockServer,
}

async fn setup(script: Vec<ResponseTemplate>) -> Setup {
    setup_as("app", script).await
}

async fn setup_as(actor: &str, script: Vec<ResponseTemplate>) -> Setup {
    setup_with(actor, script, &[]).await
}

async fn setup_with(actor: &str, script: Vec<ResponseTemplate>, extra: &[(&str, &str)]) -> Setup {
    let log: Log = Arc::default();
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(Model(Mutex::new(script.into()), log.clone()))
        .mount(&model)
        .await;
    let uri = model.uri();
    let mut env = secrets_env();
    env.push(("ANTHROPIC_API_KEY", "test-anthropic-key"));
    env.push(("SWITCHBOARD__CONNECTORS__ANTHROPIC__BASE_URL", uri.as_str()));
    env.push(("SWITCHBOARD__CONNECTORS__PROVIDERS__LINEAR__ACTOR", actor));
    env.extend_from_slice(extra);
    let mut w = World::with_env(&env).await;
    w.user("ada");
    w.connect_linear(
        "ada",
        "code-1",
        "lin-access",
        "lin-refresh",
        "app-user-1",
        "org-1",
    )
    .await;
    let posted = Arc::<Mutex<Vec<Value>>>::default();
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_string_contains("agentActivityCreate"))
        .respond_with(Activities(log.clone(), posted.clone()))
        .with_priority(1)
        .mount(&w.linear.server)
        .await;
    Setup {
        w,
        log,
        posted,
        _model: model,
    }
}

fn session_event(w: &World, action: &str, extra: Value) -> Vec<u8> {
    let mut v = json!({
        "type": "AgentSessionEvent",
        "action": action,
        "organizationId": "org-1",
        "appUserId": "app-user-1",
        "oauthClientId": "client-1",
        "agentSession": {"id": "ses-1", "status": "pending", "appUserId": "app-user-1",
            "organizationId": "org-1", "issue": {"id": "iss-1", "identifier": "ACME-1"}},
        "createdAt": "2026-11-27T10:00:00.000Z",
        "webhookId": "wh-1",
        "webhookTimestamp": w.app.clock.now().timestamp_millis(),
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::to_vec(&v).unwrap()
}

async fn deliver(w: &mut World, body: &[u8], delivery: &str) {
    let sig = hmac_hex(LINEAR_SECRET, body);
    let res = w
        .app
        .call(Role::Connectors, linear_request(body, Some(&sig), delivery))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
}

fn runner(w: &World) -> Runner {
    let platform = &w.app.platform;
    Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        w.another_process().job_registry(),
    )
}

async fn drain(w: &World) -> usize {
    runner(w).run_until_idle().await.unwrap()
}

fn created(w: &World) -> Vec<u8> {
    session_event(
        w,
        "created",
        json!({
            "promptContext": "<issue identifier=\"ACME-1\"><title>Login fails</title></issue>",
            "guidance": [{"body": "Answer in one sentence."}],
        }),
    )
}

fn bodies(posted: &Arc<Mutex<Vec<Value>>>) -> Vec<Value> {
    posted.lock().unwrap().clone()
}

#[actix_web::test]
async fn a_created_session_gets_a_thought_first_then_actions_and_the_response_once() {
    let tool_call = message(
        &[
            json!({"type": "text", "text": "Checking."}),
            json!({"type": "tool_use", "id": "toolu_1", "name": "nowhere__lookup", "input": {"q": "login"}}),
        ],
        "tool_use",
    );
    let Setup {
        mut w,
        log,
        posted,
        _model: _model_server,
    } = setup(vec![tool_call, answer("The session cookie expired.")]).await;
    let body = created(&w);
    deliver(&mut w, &body, "d-created").await;
    w.app.clock.advance(chrono::Duration::seconds(2));
    drain(&w).await;

    // The thought goes out before the run; the action once its call finished (while the run
    // goes on), the answer last.
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?} {:?}", bodies(&posted));
    assert_eq!(
        (seen[0].as_str(), seen[1].as_str()),
        ("thought", "model"),
        "{seen:?}"
    );
    assert_eq!(seen[4], "response", "{seen:?}");
    let mut middle = seen[2..4].to_vec();
    middle.sort();
    assert_eq!(middle, vec!["action", "model"], "{seen:?}");
    let sent = bodies(&posted);
    for p in &sent {
        assert_eq!(p["authorization"], "Bearer lin-access");
        assert_eq!(p["input"]["agentSessionId"], "ses-1");
        assert_eq!(p["input"]["id"].as_str().unwrap().len(), 36);
    }
    // The first thought is ephemeral (the next activity replaces it); the rest stay.
    assert_eq!(sent[0]["input"]["ephemeral"], true);
    assert!(
        sent[1..]
            .iter()
            .all(|p| p["input"].get("ephemeral").is_none())
    );
    assert_eq!(sent[1]["input"]["content"]["action"], "nowhere__lookup");
    assert_eq!(sent[1]["input"]["content"]["parameter"], r#"{"q":"login"}"#);
    assert!(
        sent[1]["input"]["content"]["result"]
            .as_str()
            .unwrap()
            .starts_with("(error)")
    );
    assert_eq!(
        sent[2]["input"]["content"],
        json!({"type": "response", "body": "The session cookie expired."})
    );
    // The thought, on the injected clock: within Linear's 10 s of the delivery.
    let secs = w.sql_texts(
        "SELECT extract(epoch FROM a.posted_at - e.received_at)::text AS t \
         FROM linear_agent_activities a, webhook_events e WHERE a.kind = 'thought'",
    );
    let secs: f64 = secs[0].parse().unwrap();
    assert!((0.0..=10.0).contains(&secs), "thought after {secs} s");
    // The run: the connection owner's, with Linear's prompt and the guidance.
    let run = w.sql_texts(
        "SELECT owner_id || '|' || status || '|' || prompt || '|' || (options->>'system') AS t FROM agent_runs",
    );
    assert_eq!(run.len(), 1);
    assert!(
        run[0].starts_with("ada|completed|<issue identifier=\"ACME-1\">"),
        "{}",
        run[0]
    );
    assert!(run[0].ends_with("Answer in one sentence."), "{}", run[0]);

    // The same delivery's job and the reply job run again: nothing is posted or run twice.
    w.exec(
        "INSERT INTO jobs (kind, payload, max_attempts, run_at, created_at, updated_at) \
         SELECT 'linear_agent_session', jsonb_build_object('event_id', e.id, 'connection_id', c.id), \
                3, timestamptz '2000-01-01Z', now(), now() FROM webhook_events e, connections c \
         UNION ALL SELECT 'linear_agent_reply', jsonb_build_object('run_id', r.id), \
                3, timestamptz '2000-01-01Z', now(), now() FROM agent_runs r",
    );
    assert_eq!(drain(&w).await, 2);
    assert_eq!(bodies(&posted).len(), 3, "no activity posted twice");
    assert_eq!(log.lock().unwrap().len(), 5, "no model call repeated");
    assert_eq!(w.sql_texts("SELECT id AS t FROM agent_runs").len(), 1);
}

#[actix_web::test]
async fn a_prompted_follow_up_runs_a_new_turn_with_the_conversation() {
    let Setup {
        mut w,
        log,
        posted,
        _model: _model_server,
    } = setup(vec![
        answer("Try clearing cookies."),
        answer("Then check the clock skew."),
    ])
    .await;
    let body = created(&w);
    deliver(&mut w, &body, "d-1").await;
    drain(&w).await;
    let body = session_event(
        &w,
        "prompted",
        json!({"agentActivity": {"id": "act-user-1", "body": "That did not help."}}),
    );
    deliver(&mut w, &body, "d-2").await;
    drain(&w).await;
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "response", "model", "response"]
    );
    let last = bodies(&posted).pop().unwrap();
    assert_eq!(
        last["input"]["content"]["body"],
        "Then check the clock skew."
    );
    let prompts = w.sql_texts("SELECT prompt AS t FROM agent_runs ORDER BY created_at, id");
    assert_eq!(prompts.len(), 2);
    let follow = prompts.iter().find(|p| p.contains("<follow_up>")).unwrap();
    assert!(follow.contains("Try clearing cookies.") && follow.contains("That did not help."));
    assert!(follow.starts_with("<issue identifier=\"ACME-1\">"));
}

#[actix_web::test]
async fn a_stop_signal_cancels_the_running_run_with_a_final_activity() {
    let Setup {
        mut w,
        log,
        posted,
        _model: _model_server,
    } = setup(vec![answer("too late").set_delay(Duration::from_secs(60))]).await;
    let body = created(&w);
    deliver(&mut w, &body, "d-1").await;
    let worker = {
        let r = runner(&w);
        actix_web::rt::spawn(async move { r.run_until_idle().await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains(&"model".to_owned()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never called the model"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = session_event(
        &w,
        "prompted",
        json!({"agentActivity": {"id": "act-user-2", "body": "stop", "signal": "stop"}}),
    );
    deliver(&mut w, &body, "d-stop").await;
    drain(&w).await;
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the run stopped at once")
        .unwrap()
        .unwrap();
    drain(&w).await;
    assert_eq!(*log.lock().unwrap(), vec!["thought", "model", "response"]);
    assert_eq!(
        bodies(&posted).pop().unwrap()["input"]["content"],
        json!({"type": "response", "body": "Stopped."})
    );
    assert_eq!(
        w.sql_texts("SELECT status AS t FROM agent_runs"),
        vec!["cancelled"]
    );
}

#[actix_web::test]
async fn a_delegated_unstarted_issue_moves_to_the_first_started_state() {
    let Setup {
        mut w,
        log,
        _model: _model_server,
        ..
    } = setup(vec![answer("On it.")]).await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_string_contains("SwitchboardDelegatedIssue"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"issue": {
                "id": "iss-1", "delegate": {"id": "app-user-1"}, "state": {"type": "unstarted"},
                "team": {"states": {"nodes": [
                    {"id": "st-todo", "type": "unstarted", "position": 0.0},
                    {"id": "st-review", "type": "started", "position": 3.0},
                    {"id": "st-doing", "type": "started", "position": 1.0},
                    {"id": "st-done", "type": "completed", "position": 4.0},
                ]}},
            }}})),
        )
        .with_priority(1)
        .mount(&w.linear.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_string_contains("issueUpdate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"issueUpdate": {"success": true}}})),
        )
        .with_priority(1)
        .mount(&w.linear.server)
        .await;
    let body = created(&w);
    deliver(&mut w, &body, "d-delegated").await;
    drain(&w).await;
    let updates = w.linear.received("/graphql", "issueUpdate").await;
    assert_eq!(updates.len(), 1);
    let sent: Value = serde_json::from_slice(&updates[0].body).unwrap();
    assert_eq!(
        sent["variables"],
        json!({"id": "iss-1", "stateId": "st-doing"})
    );
    assert_eq!(*log.lock().unwrap(), vec!["thought", "model", "response"]);
}

#[actix_web::test]
async fn a_failed_run_is_reported_as_an_error_activity() {
    let refused = ResponseTemplate::new(400).set_body_json(json!({"type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long"}}));
    let Setup {
        mut w,
        log,
        posted,
        _model: _model_server,
    } = setup(vec![refused]).await;
    let body = created(&w);
    deliver(&mut w, &body, "d-fails").await;
    drain(&w).await;
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "error"],
        "{:?}",
        bodies(&posted)
    );
    let last = bodies(&posted).pop().unwrap();
    let text = last["input"]["content"]["body"].as_str().unwrap();
    assert!(text.starts_with("The run failed: "), "{text}");
    assert!(!text.contains("test-anthropic-key"));
    assert_eq!(
        w.sql_texts("SELECT status AS t FROM agent_runs"),
        vec!["failed"]
    );
}

#[actix_web::test]
async fn connections_made_as_a_user_do_not_answer_agent_sessions() {
    let Setup {
        mut w,
        log,
        _model: _model_server,
        ..
    } = setup_as("user", vec![answer("never")]).await;
    let body = created(&w);
    deliver(&mut w, &body, "d-user").await;
    drain(&w).await;
    assert!(log.lock().unwrap().is_empty());
    assert!(w.sql_texts("SELECT id AS t FROM agent_runs").is_empty());
}

#[actix_web::test]
async fn a_session_run_offers_only_its_workspaces_linear_mcp_tools_with_the_sessions_token() {
    // Linear's MCP server answers only the session connection's token; the owner's own MCP
    // server (which any other run of theirs would offer) must not be offered or called.
    let linear_mcp = Modern::start(Some("lin-access")).await;
    let own = Modern::start(None).await;
    let mcp_url = linear_mcp.url();
    let tool_call = message(
        &[
            json!({"type": "tool_use", "id": "toolu_1", "name": "linear__add", "input": {"a": 1, "b": 2}}),
        ],
        "tool_use",
    );
    let Setup {
        mut w,
        log,
        posted,
        _model: model,
    } = setup_with(
        "app",
        vec![tool_call, answer("It is 3.")],
        &[(
            "SWITCHBOARD__CONNECTORS__PROVIDERS__LINEAR__MCP_URL",
            mcp_url.as_str(),
        )],
    )
    .await;
    let res = w
        .send(
            "ada",
            TestRequest::post()
                .uri("/api/mcp-servers")
                .set_json(json!({ "url": own.url() })),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let own_calls = own.methods().await.len();
    let body = created(&w);
    deliver(&mut w, &body, "d-tools").await;
    drain(&w).await;

    let first: Value =
        serde_json::from_slice(&model.received_requests().await.unwrap()[0].body).unwrap();
    let mut offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    offered.sort_unstable();
    assert!(offered.contains(&"linear__add"), "{offered:?}");
    assert!(
        offered
            .iter()
            .all(|n| n.starts_with("linear__") || *n == "ask_user"),
        "only the Linear MCP server's tools (and asking the user): {offered:?}"
    );
    assert_eq!(
        own.methods().await.len(),
        own_calls,
        "the owner's own MCP server was not asked"
    );
    // The call went to Linear's MCP server with the session's token (it refuses any other).
    assert!(
        linear_mcp
            .methods()
            .await
            .contains(&"tools/call".to_owned())
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let action = bodies(&posted)
        .into_iter()
        .find(|p| p["input"]["content"]["type"] == "action")
        .unwrap();
    assert_eq!(action["input"]["content"]["action"], "linear__add");
    let result = action["input"]["content"]["result"].as_str().unwrap();
    assert!(result.starts_with("3\n"), "{result}");
    assert_eq!(
        w.sql_texts("SELECT server_id || ' ' || ok::text AS t FROM mcp_tool_calls"),
        vec![format!(
            "linear:{} true",
            w.sql_texts("SELECT id AS t FROM connections")[0]
        )]
    );
}

#[actix_web::test]
async fn an_action_is_posted_while_the_run_is_still_going() {
    // The model answers the tool turn, then hangs: the action must not wait for the run's end.
    let tool_call = message(
        &[
            json!({"type": "tool_use", "id": "toolu_1", "name": "nowhere__lookup", "input": {"q": "x"}}),
        ],
        "tool_use",
    );
    let Setup {
        mut w,
        log,
        posted,
        _model: _model_server,
    } = setup(vec![
        tool_call,
        answer("too late").set_delay(Duration::from_secs(60)),
    ])
    .await;
    let body = created(&w);
    deliver(&mut w, &body, "d-going").await;
    let worker = {
        let r = runner(&w);
        actix_web::rt::spawn(async move { r.run_until_idle().await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while log.lock().unwrap().iter().filter(|e| *e == "model").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never made its second model call: {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another worker meanwhile: the action's job is already queued.
    drain(&w).await;
    assert_eq!(
        w.sql_texts("SELECT status AS t FROM agent_runs"),
        vec!["running"]
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "model", "action"],
        "{:?}",
        bodies(&posted)
    );
    assert_eq!(
        bodies(&posted).last().unwrap()["input"]["content"]["action"],
        "nowhere__lookup"
    );
    // Stop it; the final activity follows and the action is not posted again.
    let body = session_event(
        &w,
        "prompted",
        json!({"agentActivity": {"id": "act-user-3", "body": "stop", "signal": "stop"}}),
    );
    deliver(&mut w, &body, "d-going-stop").await;
    drain(&w).await;
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the run stopped")
        .unwrap()
        .unwrap();
    drain(&w).await;
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "model", "action", "response"]
    );
}

#[actix_web::test]
async fn an_elicitation_waits_for_the_users_answer_which_continues_the_conversation() {
    let ask = message(
        &[
            json!({"type": "text", "text": "One thing first."}),
            json!({"type": "tool_use", "id": "toolu_ask", "name": "ask_user",
                "input": {"question": "Which environment fails, staging or production?"}}),
        ],
        "tool_use",
    );
    let Setup {
        mut w,
        log,
        posted,
        _model: model,
    } = setup(vec![ask, answer("Staging: its session secret rotated.")]).await;
    let body = created(&w);
    deliver(&mut w, &body, "d-ask").await;
    drain(&w).await;

    // The run ends asking; the question goes out as an elicitation, not a response.
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "elicitation"]
    );
    assert_eq!(
        bodies(&posted).pop().unwrap()["input"]["content"],
        json!({"type": "elicitation", "body": "Which environment fails, staging or production?"})
    );
    assert_eq!(
        w.sql_texts("SELECT status || ' ' || stop_reason AS t FROM agent_runs"),
        vec!["completed awaiting_input"]
    );
    let first: Value =
        serde_json::from_slice(&model.received_requests().await.unwrap()[0].body).unwrap();
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "ask_user"),
        "a session's run is offered ask_user"
    );

    // The user's answer continues the same conversation: the question's tool_result.
    let body = session_event(
        &w,
        "prompted",
        json!({"agentActivity": {"id": "act-user-9", "body": "Staging."}}),
    );
    deliver(&mut w, &body, "d-answer").await;
    drain(&w).await;
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "elicitation", "model", "response"]
    );
    let second: Value =
        serde_json::from_slice(&model.received_requests().await.unwrap()[1].body).unwrap();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("<issue identifier=\"ACME-1\">")
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][1]["id"], "toolu_ask");
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_ask",
            "content": [{"type": "text", "text": "Staging."}]}]})
    );
    assert_eq!(
        bodies(&posted).pop().unwrap()["input"]["content"],
        json!({"type": "response", "body": "Staging: its session secret rotated."})
    );
}

#[actix_web::test]
async fn each_run_of_a_session_is_linked_from_it_with_external_urls() {
    let Setup {
        mut w,
        log,
        _model: _model_server,
        ..
    } = setup_with(
        "app",
        vec![answer("First."), answer("Second.")],
        &[(
            "SWITCHBOARD__CONNECTORS__AGENTS__RUN_PAGE_URL",
            "https://app.example.com/agents/{id}",
        )],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_string_contains("agentSessionUpdate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"agentSessionUpdate": {"success": true}}})),
        )
        .with_priority(1)
        .mount(&w.linear.server)
        .await;
    let body = created(&w);
    deliver(&mut w, &body, "d-url-1").await;
    drain(&w).await;
    let runs = w.sql_texts("SELECT id AS t FROM agent_runs");
    let updates = w.linear.received("/graphql", "agentSessionUpdate").await;
    assert_eq!(updates.len(), 1);
    let sent: Value = serde_json::from_slice(&updates[0].body).unwrap();
    assert_eq!(
        sent["variables"],
        json!({"id": "ses-1", "input": {"externalUrls": [
            {"label": "Agent run in Switchboard", "url": format!("https://app.example.com/agents/{}", runs[0])},
        ]}})
    );
    assert!(
        !sent.to_string().contains("lin-access"),
        "the token goes in the header only"
    );

    // A follow-up's run is linked too, first; the earlier one stays.
    let body = session_event(
        &w,
        "prompted",
        json!({"agentActivity": {"id": "act-user-5", "body": "And then?"}}),
    );
    deliver(&mut w, &body, "d-url-2").await;
    drain(&w).await;
    let second = w.sql_texts("SELECT id AS t FROM agent_runs WHERE prompt LIKE '%<follow_up>%'");
    let updates = w.linear.received("/graphql", "agentSessionUpdate").await;
    assert_eq!(updates.len(), 2);
    let sent: Value = serde_json::from_slice(&updates[1].body).unwrap();
    let urls = sent["variables"]["input"]["externalUrls"]
        .as_array()
        .unwrap();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert_eq!(
        urls[0]["url"],
        format!("https://app.example.com/agents/{}", second[0])
    );
    assert_eq!(
        urls[1],
        json!({"label": "Earlier run 1", "url": format!("https://app.example.com/agents/{}", runs[0])})
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec!["thought", "model", "response", "model", "response"]
    );
}

#[actix_web::test]
async fn agent_side_signals_on_a_prompt_are_answered_as_a_follow_up() {
    let Setup {
        mut w,
        log,
        posted,
        _model: _model_server,
    } = setup(vec![answer("A."), answer("B."), answer("C.")]).await;
    let body = created(&w);
    deliver(&mut w, &body, "d-sig-0").await;
    drain(&w).await;
    for (i, signal) in ["continue", "select"].iter().enumerate() {
        let body = session_event(
            &w,
            "prompted",
            json!({"agentActivity": {"id": format!("act-sig-{i}"), "body": "More, please.", "signal": signal}}),
        );
        deliver(&mut w, &body, &format!("d-sig-{}", i + 1)).await;
        drain(&w).await;
    }
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "thought", "model", "response", "model", "response", "model", "response"
        ]
    );
    assert_eq!(
        bodies(&posted).pop().unwrap()["input"]["content"]["body"],
        "C."
    );
    assert_eq!(
        w.sql_texts("SELECT status AS t FROM agent_runs"),
        vec!["completed", "completed", "completed"]
    );
}
