//! Agent runs against a local Anthropic stand-in (wiremock on 127.0.0.1 streaming scripted
//! conversations) and server-everything as the real MCP server: the tool loop, parallel tool
//! calls and their result order, tool errors, retries, limits, cancellation, a worker dying
//! mid-run, the SSE stream and its resume, ownership. The client alone: retries and sleeps.
//! Split by flow: here the Anthropic stand-in and the helpers; `runs` (the tool loop, limits,
//! retries, a tool's timeout); `crashes` (a worker dying mid-run); `stream` (the SSE stream);
//! `control` (cancellation, bad input, no API key, pruning); `client` (the client alone).

mod client;
mod control;
mod crashes;
mod runs;
mod stream;

use super::World;
use super::mcp_stand_ins::Everything;
use crate::common::Seen;
use crate::common::jobs::{drain, runner};
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

// --- the Anthropic stand-in -------------------------------------------------------------

fn frames(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

fn stream(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("request-id", "req_test")
        .set_body_raw(body, "text/event-stream")
}

fn start(input_tokens: u64) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_x", "type": "message", "role": "assistant",
        "content": [], "stop_reason": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
}

fn end(stop: &str, output_tokens: u64) -> Vec<Value> {
    vec![
        json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": output_tokens}}),
        json!({"type": "message_stop"}),
    ]
}

/// A text answer in two deltas, with a ping between them.
fn text_answer(text: &str) -> ResponseTemplate {
    let (a, b) = text.split_at(text.len() / 2);
    let mut ev = vec![
        start(100),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": a}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": b}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    ev.extend(end("end_turn", 20));
    stream(frames(&ev))
}

/// Text, then one tool_use block per call, each input sent in two `input_json_delta`s.
fn tool_calls(calls: &[(&str, &str, Value)]) -> ResponseTemplate {
    let mut ev = vec![
        start(100),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    for (i, (id, name, input)) in calls.iter().enumerate() {
        let json = input.to_string();
        let (a, b) = json.split_at(json.len() / 2);
        let index = i + 1;
        ev.push(json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
        ev.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": a}}));
        ev.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": b}}));
        ev.push(json!({"type": "content_block_stop", "index": index}));
    }
    ev.extend(end("tool_use", 30));
    stream(frames(&ev))
}

/// Answers requests in order from a script; a request past its end gets a 500.
struct Script(Mutex<VecDeque<ResponseTemplate>>);

impl Respond for Script {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| ResponseTemplate::new(500).set_body_string("script ended"))
    }
}

async fn anthropic_stand_in(script: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "test-anthropic-key"))
        .and(header("anthropic-version", "2026-10-21"))
        .respond_with(Script(Mutex::new(script.into())))
        .mount(&server)
        .await;
    server
}

/// Waits (up to 20 s) until the stand-in has received `n` model calls: the worker under test
/// runs in this process and its progress is only visible from outside.
async fn until_model_calls(server: &MockServer, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.received_requests().await.unwrap_or_default().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "model call {n} never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

// --- the world ----------------------------------------------------------------------------

async fn world(anthropic: &MockServer, extra: &[(&str, &str)]) -> World {
    let uri = anthropic.uri();
    let mut env = vec![
        ("ANTHROPIC_API_KEY", "test-anthropic-key"),
        ("SWITCHBOARD__CONNECTORS__ANTHROPIC__BASE_URL", uri.as_str()),
    ];
    env.extend_from_slice(extra);
    World::with_env(&env).await
}

async fn start_run(w: &mut World, user: &str, body: Value) -> String {
    let res = w
        .send(
            user,
            TestRequest::post().uri("/api/agent-runs").set_json(body),
        )
        .await;
    assert_eq!(res.status, 202, "{}", String::from_utf8_lossy(&res.body));
    res.json()["id"].as_str().unwrap().to_owned()
}

async fn get(w: &mut World, user: &str, uri: &str) -> Seen {
    w.send(user, TestRequest::get().uri(uri)).await
}

/// Adds server-everything for `user`; returns the namespaced names of echo and get-sum.
async fn add_everything(w: &mut World, user: &str, everything: &Everything) -> (String, String) {
    let res = w
        .send(
            user,
            TestRequest::post()
                .uri("/api/mcp-servers")
                .set_json(json!({ "url": everything.url() })),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    (
        tool_name(w, user, "echo").await,
        tool_name(w, user, "get-sum").await,
    )
}

fn tool_results(request: &Value) -> Vec<Value> {
    let last = request["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "user");
    last["content"].as_array().unwrap().clone()
}

/// The namespaced name of one of the caller's tools.
async fn tool_name(w: &mut World, user: &str, tool: &str) -> String {
    let tools = get(w, user, "/api/tools").await.json();
    tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == tool)
        .unwrap()["namespaced_name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs every ready job in a task of its own, as a worker of another process would, so a test
/// can kill that worker mid-run by aborting the task.
async fn spawn_worker(
    w: &World,
) -> actix_web::rt::task::JoinHandle<Result<usize, switchboard::db::DbError>> {
    let runner = runner(w);
    actix_web::rt::spawn(async move { runner.run_until_idle().await })
}

fn parse_sse(body: &[u8]) -> Vec<(String, String, Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|frame| {
            let mut id = None;
            let mut kind = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            Some((id?, kind?, data?))
        })
        .collect()
}
