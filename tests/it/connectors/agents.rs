//! Agent runs against a local Anthropic stand-in (wiremock on 127.0.0.1 streaming scripted
//! conversations) and server-everything as the real MCP server: the tool loop, parallel tool
//! calls and their result order, tool errors, retries, limits, cancellation, a worker dying
//! mid-run, the SSE stream and its resume, ownership. The client alone: retries and sleeps.

use super::World;
use super::mcp_stand_ins::Everything;
use crate::common::Seen;
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::connectors::anthropic::{self, AnthropicError, Request, Sleeper};
use switchboard::jobs::Runner;
use switchboard::platform::clock::Clock;
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

/// Runs every ready connectors job, as a worker of another process would.
async fn drain(w: &World) -> usize {
    let platform = &w.app.platform;
    Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        w.another_process().job_registry(),
    )
    .run_until_idle()
    .await
    .unwrap()
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
    let tools = get(w, user, "/api/tools").await.json();
    let name = |tool: &str| {
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tool)
            .unwrap()["namespaced_name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (name("echo"), name("get-sum"))
}

fn tool_results(request: &Value) -> Vec<Value> {
    let last = request["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "user");
    last["content"].as_array().unwrap().clone()
}

// --- runs -----------------------------------------------------------------------------------

#[actix_web::test]
async fn a_run_calls_two_tools_in_parallel_recovers_from_a_tool_error_and_ends() {
    let everything = Everything::start();
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let (echo, sum) = add_everything(&mut w, &ada, &everything).await;
    anthropic.reset().await;
    let anthropic_script = vec![
        tool_calls(&[
            ("toolu_a", &echo, json!({"message": "hi"})),
            ("toolu_b", &sum, json!({"a": 2, "b": 3})),
        ]),
        // Bad arguments: the model hears the error and tries again.
        tool_calls(&[("toolu_c", &sum, json!({"a": "two"}))]),
        tool_calls(&[("toolu_d", &sum, json!({"a": 20, "b": 22}))]),
        text_answer("The sum is 42."),
    ];
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(Script(Mutex::new(anthropic_script.into())))
        .mount(&anthropic)
        .await;

    let id = start_run(
        &mut w,
        &ada,
        json!({"prompt": "Add things", "system": "Be brief."}),
    )
    .await;
    let res = get(&mut w, &ada, &format!("/api/agent-runs/{id}")).await;
    assert_eq!(res.json()["status"], "queued");
    assert_eq!(drain(&w).await, 1);

    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["stop_reason"], "end_turn");
    assert_eq!(run["final_text"], "The sum is 42.");
    assert_eq!(run["turns"], 4);
    assert_eq!(run["usage"]["input_tokens"], 400);
    assert_eq!(run["usage"]["output_tokens"], 110);
    assert_eq!(run["system"], "Be brief.");

    let reqs = requests(&anthropic).await;
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0]["system"], "Be brief.");
    assert_eq!(reqs[0]["stream"], true);
    assert_eq!(
        reqs[0]["messages"],
        json!([{"role": "user", "content": "Add things"}])
    );
    let offered: Vec<&str> = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(offered.contains(&echo.as_str()) && offered.contains(&sum.as_str()));
    assert!(reqs[0]["tools"][0]["input_schema"].get("$schema").is_none());
    // The assistant message goes back unchanged, then one result per call, in call order.
    assert_eq!(reqs[1]["messages"][1]["role"], "assistant");
    assert_eq!(
        reqs[1]["messages"][1]["content"][1]["input"],
        json!({"message": "hi"})
    );
    let first = tool_results(&reqs[1]);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["tool_use_id"], "toolu_a");
    assert_eq!(first[0]["content"][0]["text"], "Echo: hi");
    assert!(first[0].get("is_error").is_none());
    assert_eq!(first[1]["tool_use_id"], "toolu_b");
    assert!(
        first[1]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains('5')
    );
    let second = tool_results(&reqs[2]);
    assert_eq!(second[0]["tool_use_id"], "toolu_c");
    assert_eq!(second[0]["is_error"], true);
    let third = tool_results(&reqs[3]);
    assert!(
        third[0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("42")
    );
    assert_eq!(reqs[3]["messages"].as_array().unwrap().len(), 7);

    // Every step is there: 4 model calls and 4 tool calls with their outcomes.
    let steps = run["steps"].as_array().unwrap();
    let kinds: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "{}:{}:{}",
                s["turn"],
                s["kind"].as_str().unwrap(),
                s["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "1:model:ok",
            "1:tool:ok",
            "1:tool:ok",
            "2:model:ok",
            "2:tool:error",
            "3:model:ok",
            "3:tool:ok",
            "4:model:ok"
        ]
    );
    assert_eq!(steps[0]["request_id"], "req_test");
    // The MCP calls happened once each, as ada (the bad arguments were refused before sending).
    // Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    let calls = w.sql_texts(
        "SELECT concat_ws('|', tool, ok, owner_id) AS t FROM mcp_tool_calls ORDER BY tool, id",
    );
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(calls.iter().all(|c| c.ends_with("|ada")));
}

#[actix_web::test]
async fn max_turns_and_the_token_budget_stop_a_run() {
    let anthropic = anthropic_stand_in(vec![
        tool_calls(&[("toolu_1", "nope", json!({}))]),
        tool_calls(&[("toolu_2", "nope", json!({}))]),
        tool_calls(&[("toolu_3", "nope", json!({}))]),
    ])
    .await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "loop", "max_turns": 2})).await;
    drain(&w).await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "stopped", "{run}");
    assert_eq!(run["stop_reason"], "max_turns");
    assert_eq!(run["turns"], 2);
    // An unknown tool is an error result for the model, not a failed run.
    let reqs = requests(&anthropic).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(tool_results(&reqs[1])[0]["is_error"], true);

    // 130 tokens per call: a budget of 200 stops after the second call.
    let id = start_run(
        &mut w,
        &ada,
        json!({"prompt": "loop", "max_tokens_budget": 200}),
    )
    .await;
    anthropic.reset().await;
    Mock::given(method("POST"))
        .respond_with(Script(Mutex::new(
            vec![
                tool_calls(&[("toolu_1", "nope", json!({}))]),
                tool_calls(&[("toolu_2", "nope", json!({}))]),
                tool_calls(&[("toolu_3", "nope", json!({}))]),
            ]
            .into(),
        )))
        .mount(&anthropic)
        .await;
    drain(&w).await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "stopped", "{run}");
    assert_eq!(run["stop_reason"], "token_budget");
    assert_eq!(run["turns"], 2);
    assert_eq!(requests(&anthropic).await.len(), 2);
}

#[actix_web::test]
async fn retryable_errors_are_retried_and_a_4xx_fails_the_run() {
    let anthropic = anthropic_stand_in(vec![
        ResponseTemplate::new(429)
            .insert_header("retry-after", "0")
            .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})),
        // An error event after a 200, then a malformed tool input: both tried again.
        stream(frames(&[
            start(1),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ])),
        text_answer("fine"),
    ])
    .await;
    let mut w = world(
        &anthropic,
        &[("SWITCHBOARD__CONNECTORS__ANTHROPIC__MAX_RETRIES", "3")],
    )
    .await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "hi"})).await;
    drain(&w).await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["final_text"], "fine");
    assert_eq!(requests(&anthropic).await.len(), 3);

    anthropic.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}}),
        ))
        .mount(&anthropic)
        .await;
    let id = start_run(
        &mut w,
        &ada,
        json!({"prompt": "hi", "model": "claude-nope"}),
    )
    .await;
    drain(&w).await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("bad model"),
        "{run}"
    );
    assert_eq!(
        requests(&anthropic).await.len(),
        1,
        "a 400 is never retried"
    );
    assert_eq!(w.sql_texts("SELECT count(*)::text AS t FROM jobs"), ["0"]);
}

#[actix_web::test]
async fn a_worker_killed_mid_run_resumes_without_calling_a_tool_twice() {
    let everything = Everything::start();
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let (echo, sum) = add_everything(&mut w, &ada, &everything).await;
    anthropic.reset().await;
    Mock::given(method("POST"))
        .respond_with(Script(Mutex::new(
            vec![
                tool_calls(&[
                    ("toolu_a", &echo, json!({"message": "once"})),
                    ("toolu_b", &sum, json!({"a": 1, "b": 1})),
                ]),
                // The worker dies while waiting for this one.
                text_answer("never seen").set_delay(Duration::from_secs(60)),
                text_answer("done"),
            ]
            .into(),
        )))
        .mount(&anthropic)
        .await;
    let id = start_run(&mut w, &ada, json!({"prompt": "go"})).await;

    let platform = w.app.platform.clone();
    let registry = w.another_process().job_registry();
    let worker = actix_web::rt::spawn(async move {
        Runner::new(
            platform.pool.clone(),
            platform.clock.clone(),
            platform.config.jobs.clone(),
            registry,
        )
        .run_until_idle()
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while anthropic.received_requests().await.unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second model call never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let _ = worker.await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "running");

    // The lease runs out; another worker re-claims the job and resumes after the tool calls.
    w.app.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(drain(&w).await, 1);
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["final_text"], "done");
    assert_eq!(run["turns"], 2);
    // Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    assert_eq!(
        w.sql_texts("SELECT count(*)::text AS t FROM mcp_tool_calls"),
        ["2"],
        "no tool was called twice"
    );
    let reqs = requests(&anthropic).await;
    assert_eq!(reqs.len(), 3);
    // The resumed call carries the same conversation as the lost one.
    assert_eq!(reqs[1]["messages"], reqs[2]["messages"]);
    let results = tool_results(&reqs[2]);
    assert_eq!(results[0]["tool_use_id"], "toolu_a");
    assert_eq!(results[0]["content"][0]["text"], "Echo: once");
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

async fn spawn_worker(
    w: &World,
) -> actix_web::rt::task::JoinHandle<Result<usize, switchboard::db::DbError>> {
    let platform = w.app.platform.clone();
    let registry = w.another_process().job_registry();
    actix_web::rt::spawn(async move {
        Runner::new(
            platform.pool.clone(),
            platform.clock.clone(),
            platform.config.jobs.clone(),
            registry,
        )
        .run_until_idle()
        .await
    })
}

#[actix_web::test]
async fn a_tool_call_cut_off_by_a_crash_is_reported_as_interrupted_not_run_again() {
    let everything = Everything::start();
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let (echo, _) = add_everything(&mut w, &ada, &everything).await;
    let long = tool_name(&mut w, &ada, "trigger-long-running-operation").await;
    anthropic.reset().await;
    Mock::given(method("POST"))
        .respond_with(Script(Mutex::new(
            vec![
                tool_calls(&[
                    ("toolu_echo", &echo, json!({"message": "quick"})),
                    ("toolu_long", &long, json!({"duration": 30, "steps": 1})),
                ]),
                text_answer("I could not confirm the long operation."),
            ]
            .into(),
        )))
        .mount(&anthropic)
        .await;
    let id = start_run(&mut w, &ada, json!({"prompt": "go"})).await;
    let worker = spawn_worker(&w).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let state = "SELECT coalesce(string_agg(tool_use_id || '=' || status, ',' ORDER BY tool_use_id), '') AS t \
                 FROM agent_steps WHERE kind = 'tool'";
    while w.sql_texts(state) != ["toolu_echo=ok,toolu_long=started"] {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            w.sql_texts(state)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let _ = worker.await;

    w.app.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(drain(&w).await, 1);
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(w.sql_texts(state), ["toolu_echo=ok,toolu_long=interrupted"]);
    let reqs = requests(&anthropic).await;
    assert_eq!(reqs.len(), 2);
    let results = tool_results(&reqs[1]);
    assert_eq!(results[0]["content"][0]["text"], "Echo: quick");
    assert_eq!(results[1]["tool_use_id"], "toolu_long");
    assert_eq!(results[1]["is_error"], true);
    assert!(
        results[1]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    // Only the echo reached the end of a call; the long one was not started a second time.
    // Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    assert_eq!(
        w.sql_texts("SELECT string_agg(tool, ',') AS t FROM mcp_tool_calls"),
        ["echo"]
    );
}

#[actix_web::test]
async fn a_tool_past_its_timeout_is_an_error_result() {
    let everything = Everything::start();
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(
        &anthropic,
        &[("SWITCHBOARD__CONNECTORS__AGENTS__TOOL_TIMEOUT_SECS", "1")],
    )
    .await;
    let ada = w.user("ada");
    add_everything(&mut w, &ada, &everything).await;
    let long = tool_name(&mut w, &ada, "trigger-long-running-operation").await;
    anthropic.reset().await;
    Mock::given(method("POST"))
        .respond_with(Script(Mutex::new(
            vec![
                tool_calls(&[("toolu_long", &long, json!({"duration": 5, "steps": 1}))]),
                text_answer("It timed out."),
            ]
            .into(),
        )))
        .mount(&anthropic)
        .await;
    let id = start_run(
        &mut w,
        &ada,
        json!({"prompt": "go", "tools": ["trigger-long-running-operation"]}),
    )
    .await;
    drain(&w).await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    let reqs = requests(&anthropic).await;
    // The filter offered only that tool.
    assert_eq!(reqs[0]["tools"].as_array().unwrap().len(), 1);
    let results = tool_results(&reqs[1]);
    assert_eq!(results[0]["is_error"], true);
    assert!(
        results[0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("within 1 s"),
        "{results:?}"
    );
}

#[actix_web::test]
async fn a_run_whose_workers_keep_dying_fails_instead_of_running_forever() {
    let anthropic = anthropic_stand_in(vec![
        text_answer("never").set_delay(Duration::from_secs(60)),
    ])
    .await;
    let mut w = world(
        &anthropic,
        &[("SWITCHBOARD__CONNECTORS__AGENTS__MAX_ATTEMPTS", "1")],
    )
    .await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "doomed"})).await;
    let worker = spawn_worker(&w).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while anthropic.received_requests().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let _ = worker.await;
    w.app.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(drain(&w).await, 1);
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "the run was interrupted too many times");
    assert_eq!(anthropic.received_requests().await.unwrap().len(), 1);
    assert_eq!(w.sql_texts("SELECT count(*)::text AS t FROM jobs"), ["0"]);
}

#[actix_web::test]
async fn the_event_stream_delivers_every_step_resumes_and_is_the_owners_only() {
    let anthropic = anthropic_stand_in(vec![
        tool_calls(&[("toolu_1", "nope", json!({"x": 1}))]),
        text_answer("all done"),
    ])
    .await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let id = start_run(&mut w, &ada, json!({"prompt": "stream"})).await;
    drain(&w).await;

    let uri = format!("/api/agent-runs/{id}/events");
    let res = get(&mut w, &ada, &uri).await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&res.body);
    let kinds: Vec<&str> = events.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "status",
            "status",
            "text_delta",
            "model_message",
            "tool_call_started",
            "tool_call_finished",
            "text_delta",
            "model_message",
            "status"
        ]
    );
    assert_eq!(events[0].2["status"], "queued");
    assert_eq!(events[1].2["status"], "running");
    assert_eq!(events[4].2["tool_use_id"], "toolu_1");
    assert_eq!(events[5].2["is_error"], true);
    assert_eq!(events[6].2["text"], "all done");
    assert_eq!(events[8].2["status"], "completed");

    // Resuming after the fifth event sends the rest, nothing twice.
    let res = w
        .send(
            &ada,
            TestRequest::get()
                .uri(&uri)
                .insert_header(("last-event-id", events[4].0.as_str())),
        )
        .await;
    let rest = parse_sse(&res.body);
    assert_eq!(rest.len(), 4);
    assert_eq!(rest[0].0, events[5].0);

    // Another user's run does not exist for them.
    for path in [format!("/api/agent-runs/{id}"), uri.clone()] {
        let res = get(&mut w, &bob, &path).await;
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(res.json()["code"], "AGENT_RUN_NOT_FOUND");
    }
    let res = w
        .send(
            &bob,
            TestRequest::post().uri(&format!("/api/agent-runs/{id}/cancel")),
        )
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(
        get(&mut w, &bob, "/api/agent-runs").await.json()["runs"],
        json!([])
    );
    let list = get(&mut w, &ada, "/api/agent-runs").await.json();
    assert_eq!(list["runs"][0]["id"], id.as_str());
}

#[actix_web::test]
async fn a_stream_opened_before_the_run_starts_follows_it_to_the_end() {
    let anthropic = anthropic_stand_in(vec![
        tool_calls(&[("toolu_1", "nope", json!({}))]).set_delay(Duration::from_millis(300)),
        text_answer("live").set_delay(Duration::from_millis(300)),
    ])
    .await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "tail"})).await;
    // The worker runs on this thread while the stream below waits for events: what the stream
    // sends after `queued` it can only have found by polling while the run went on.
    let worker = spawn_worker(&w).await;
    let res = tokio::time::timeout(
        Duration::from_secs(20),
        get(&mut w, &ada, &format!("/api/agent-runs/{id}/events")),
    )
    .await
    .expect("the stream ends after the final status");
    assert_eq!(worker.await.unwrap().unwrap(), 1);
    let events = parse_sse(&res.body);
    let last = events.last().unwrap();
    assert_eq!(last.1, "status");
    assert_eq!(last.2["status"], "completed");
    assert_eq!(last.2["final_text"], "live");
    assert!(events.iter().any(|e| e.1 == "tool_call_finished"));
    let ids: Vec<i64> = events.iter().map(|e| e.0.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");
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

#[actix_web::test]
async fn cancel_limits_and_bad_input() {
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(
        &anthropic,
        &[
            ("SWITCHBOARD__CONNECTORS__AGENTS__MAX_CONCURRENT_RUNS", "2"),
            ("SWITCHBOARD__CONNECTORS__AGENTS__MAX_RUNS_PER_HOUR", "3"),
        ],
    )
    .await;
    let ada = w.user("ada");
    for (body, why) in [
        (json!({"prompt": "  "}), "empty prompt"),
        (json!({"prompt": "x", "max_turns": 0}), "max_turns"),
        (json!({"prompt": "x", "max_tokens_budget": 0}), "budget"),
        (json!({"prompt": "x", "model": "a b"}), "model"),
        (json!({"prompt": "x", "temperature": 1}), "unknown field"),
    ] {
        let res = w
            .send(
                &ada,
                TestRequest::post().uri("/api/agent-runs").set_json(body),
            )
            .await;
        assert_eq!(res.status, 400, "{why}");
    }
    let a = start_run(&mut w, &ada, json!({"prompt": "one"})).await;
    let _b = start_run(&mut w, &ada, json!({"prompt": "two"})).await;
    let res = w
        .send(
            &ada,
            TestRequest::post()
                .uri("/api/agent-runs")
                .set_json(json!({"prompt": "3"})),
        )
        .await;
    assert_eq!(res.status, 429);
    assert_eq!(res.json()["code"], "TOO_MANY_ACTIVE_RUNS");
    assert!(res.header("retry-after").is_some());

    // A queued run is cancelled at once; its job then does nothing.
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/agent-runs/{a}/cancel")),
        )
        .await;
    assert_eq!(res.status, 202);
    assert_eq!(res.json()["status"], "cancelled");
    let _c = start_run(&mut w, &ada, json!({"prompt": "three"})).await;
    // Three started this hour: the fourth waits until the first is an hour old.
    let first = w.app.clock_now();
    w.app.clock.advance(chrono::Duration::minutes(10));
    w.exec("UPDATE agent_runs SET status = 'failed' WHERE status <> 'cancelled'");
    let res = w
        .send(
            &ada,
            TestRequest::post()
                .uri("/api/agent-runs")
                .set_json(json!({"prompt": "4"})),
        )
        .await;
    assert_eq!(res.status, 429);
    assert_eq!(res.json()["code"], "RATE_LIMITED");
    let wait: i64 = res.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(wait, 50 * 60, "first run at {first}");
    w.app.clock.advance(chrono::Duration::minutes(51));
    start_run(&mut w, &ada, json!({"prompt": "five"})).await;
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/agent-runs/{a}/cancel")),
        )
        .await;
    assert_eq!(res.status, 202, "cancelling a cancelled run is a no-op");
}

#[actix_web::test]
async fn a_running_run_is_cancelled_mid_stream() {
    let anthropic = anthropic_stand_in(vec![
        text_answer("too late").set_delay(Duration::from_secs(60)),
    ])
    .await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "slow"})).await;
    let platform = w.app.platform.clone();
    let registry = w.another_process().job_registry();
    let worker = actix_web::rt::spawn(async move {
        Runner::new(
            platform.pool.clone(),
            platform.clock.clone(),
            platform.config.jobs.clone(),
            registry,
        )
        .run_until_idle()
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while anthropic.received_requests().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/agent-runs/{id}/cancel")),
        )
        .await;
    assert_eq!(res.status, 202);
    assert_eq!(res.json()["cancel_requested"], true);
    // The worker notices within poll_ms, long before the model would answer.
    let ran = tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the run stopped at once")
        .unwrap()
        .unwrap();
    assert_eq!(ran, 1);
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["turns"], 0);
}

#[actix_web::test]
async fn without_an_api_key_runs_are_refused_clearly() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let res = w
        .send(
            &ada,
            TestRequest::post()
                .uri("/api/agent-runs")
                .set_json(json!({"prompt": "x"})),
        )
        .await;
    assert_eq!(res.status, 503);
    assert_eq!(res.json()["code"], "AGENTS_NOT_CONFIGURED");
}

// --- the client alone ---------------------------------------------------------------------

#[derive(Default)]
struct Recorded(Mutex<Vec<Duration>>);

impl Sleeper for Recorded {
    fn sleep(&self, d: Duration) -> futures_util::future::BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(d);
        Box::pin(async {})
    }
}

fn client(server: &MockServer, retries: u32) -> (anthropic::Client, Arc<Recorded>) {
    let config = crate::common::test_config(&[
        (
            "SWITCHBOARD__CONNECTORS__ANTHROPIC__BASE_URL",
            &server.uri(),
        ),
        (
            "SWITCHBOARD__CONNECTORS__ANTHROPIC__MAX_RETRIES",
            &retries.to_string(),
        ),
    ]);
    let sleeper = Arc::new(Recorded::default());
    let c = anthropic::Client::new(
        &config.connectors.anthropic,
        Some(switchboard::platform::secret::Secret::new(
            "test-anthropic-key",
        )),
    )
    .unwrap()
    .with_sleeper(sleeper.clone());
    (c, sleeper)
}

fn request() -> Request {
    Request {
        model: "claude-sonnet-5-5".into(),
        max_tokens: 100,
        system: None,
        messages: vec![json!({"role": "user", "content": "hi"})],
        tools: vec![],
    }
}

#[actix_web::test]
async fn the_client_honours_retry_after_backs_off_on_529_and_never_retries_a_4xx() {
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let server = anthropic_stand_in(vec![
        ResponseTemplate::new(429).insert_header("retry-after", "7"),
        ResponseTemplate::new(529).set_body_json(&overloaded),
        // A malformed tool input is a garbled response: tried again.
        stream(frames(&[
            start(1),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\": "}}),
            json!({"type": "content_block_stop", "index": 0}),
        ])),
        text_answer("ok"),
    ])
    .await;
    let (c, slept) = client(&server, 3);
    let res = c.stream(&request(), None).await.unwrap();
    assert_eq!(res.attempts, 4);
    assert_eq!(res.request_id.as_deref(), Some("req_test"));
    assert_eq!(res.message.content[0]["text"], "ok");
    let slept = slept.0.lock().unwrap().clone();
    assert_eq!(slept.len(), 3);
    assert_eq!(slept[0], Duration::from_secs(7));
    assert!(slept[1] >= Duration::from_millis(750) && slept[1] <= Duration::from_secs(1));

    // Out of retries: the last error comes back.
    let server = anthropic_stand_in(vec![
        ResponseTemplate::new(529).set_body_json(&overloaded),
        ResponseTemplate::new(529).set_body_json(&overloaded),
    ])
    .await;
    let (c, _) = client(&server, 1);
    let err = c.stream(&request(), None).await.unwrap_err();
    assert!(
        matches!(err, AnthropicError::Api { status: 529, .. }),
        "{err:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let server = anthropic_stand_in(vec![
        ResponseTemplate::new(401)
            .insert_header("request-id", "req_401")
            .set_body_json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
    ])
    .await;
    let (c, slept) = client(&server, 3);
    let err = c.stream(&request(), None).await.unwrap_err();
    match err {
        AnthropicError::Api {
            status,
            kind,
            request_id,
            ..
        } => {
            assert_eq!((status, kind.as_str()), (401, "authentication_error"));
            assert_eq!(request_id.as_deref(), Some("req_401"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert!(slept.0.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn finished_runs_past_retention_are_pruned_by_the_prune_job() {
    let anthropic =
        anthropic_stand_in(vec![text_answer("old one"), text_answer("young one")]).await;
    let mut w = world(
        &anthropic,
        &[("SWITCHBOARD__CONNECTORS__AGENTS__RETENTION_DAYS", "7")],
    )
    .await;
    let ada = w.user("ada");
    let old = start_run(&mut w, &ada, json!({"prompt": "first"})).await;
    drain(&w).await;
    w.app.clock.advance(chrono::Duration::days(6));
    let young = start_run(&mut w, &ada, json!({"prompt": "second"})).await;
    drain(&w).await;
    // A run still going is kept however old (here one whose worker is elsewhere).
    w.exec(
        "INSERT INTO agent_runs (id, owner_id, status, prompt, model, options, created_at) \
         VALUES ('run_live', 'ada', 'running', 'p', 'm', '{}', timestamptz '2000-01-01Z')",
    );
    w.app.clock.advance(chrono::Duration::days(2));
    {
        let mut conn = w.app.db.conn();
        switchboard::jobs::enqueue(
            &mut conn,
            w.app.clock.now(),
            "events_prune",
            &json!({}),
            &Default::default(),
        )
        .unwrap();
    }
    assert_eq!(drain(&w).await, 1);
    assert_eq!(w.sql_texts("SELECT id AS t FROM agent_runs ORDER BY id"), {
        let mut ids = vec![young.clone(), "run_live".to_owned()];
        ids.sort();
        ids
    });
    for table in ["agent_steps", "agent_events"] {
        assert_eq!(
            w.sql_texts(&format!(
                "SELECT count(*)::text AS t FROM {table} WHERE run_id = '{old}'"
            )),
            vec!["0"],
            "{table} of the pruned run"
        );
        assert_ne!(
            w.sql_texts(&format!(
                "SELECT count(*)::text AS t FROM {table} WHERE run_id = '{young}'"
            )),
            vec!["0"],
            "{table} of the kept run"
        );
    }
}

/// A stream and the worker running its run in one process: the run's commits wake the event
/// poller, so the stream sees the run end at once, not at the next poll (here an hour away).
#[actix_web::test]
async fn a_stream_in_the_runs_own_process_sees_its_end_without_waiting_for_a_poll() {
    use actix_web::test;
    let anthropic = anthropic_stand_in(vec![
        tool_calls(&[("toolu_1", "nope", json!({}))]).set_delay(Duration::from_millis(300)),
        text_answer("done").set_delay(Duration::from_millis(300)),
    ])
    .await;
    let mut w = world(
        &anthropic,
        &[("SWITCHBOARD__CONNECTORS__AGENTS__POLL_MS", "3600000")],
    )
    .await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "tail"})).await;
    // One process: its HTTP app and its worker share one connectors state.
    let state = actix_web::web::Data::new(w.another_process());
    let registry = state.job_registry();
    let platform = w.app.platform.clone();
    let app = test::init_service(switchboard::platform::app::build_app(
        actix_web::web::Data::new(platform.clone()),
        switchboard::platform::telemetry::RoleTag("connectors"),
        move |cfg| {
            cfg.app_data(state.clone());
            cfg.app_data(state.verifier());
            switchboard::connectors::configure(cfg);
        },
    ))
    .await;
    let worker = actix_web::rt::spawn(async move {
        Runner::new(
            platform.pool.clone(),
            platform.clock.clone(),
            platform.config.jobs.clone(),
            registry,
        )
        .run_until_idle()
        .await
    });
    let req = TestRequest::get()
        .uri(&format!("/api/agent-runs/{id}/events"))
        .insert_header(w.bearer(&ada))
        .to_request();
    let body = tokio::time::timeout(Duration::from_secs(20), async {
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 200);
        test::read_body(res).await
    })
    .await
    .expect("the stream ends when the run does, long before the next poll");
    assert_eq!(worker.await.unwrap().unwrap(), 1);
    let events = parse_sse(&body);
    let last = events.last().unwrap();
    assert_eq!(last.1, "status");
    assert_eq!(last.2["status"], "completed");
    assert_eq!(last.2["final_text"], "done");
    assert!(events.iter().any(|e| e.1 == "tool_call_finished"));
}
