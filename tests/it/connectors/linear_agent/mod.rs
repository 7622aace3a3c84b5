//! Linear agent sessions end to end: a signed `AgentSessionEvent` through `POST
//! /webhooks/linear`, the jobs it starts, an Anthropic stand-in, and a GraphQL stand-in (the
//! Linear provider's wiremock) that records every `agentActivityCreate` in one log shared with
//! the model's, so their order is seen: the thought before the run, actions and the response
//! after it, a `prompted` follow-up, `stop`, and retried jobs posting nothing twice.
//! Split by flow: here the stand-ins and the helpers; `conversation` (created, prompted, stop,
//! agent-side signals); `activities` (errors, actions mid-run, elicitation, run links);
//! `workspace` (the state, the actor, the workspace's own MCP tools).

mod activities;
mod conversation;
mod workspace;

use super::World;
use super::mcp_stand_ins::Modern;
use crate::common::jobs::{drain, runner};
use crate::webhooks::{LINEAR_SECRET, hmac_hex, linear_request, secrets_env};
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
