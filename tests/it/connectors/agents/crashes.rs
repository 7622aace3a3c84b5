//! A worker dying mid-run: the run resumes without calling a tool twice, a call cut off is
//! reported as interrupted, and a run whose workers keep dying fails.

use super::*;

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

    let worker = spawn_worker(&w).await;
    until_model_calls(&anthropic, 2).await;
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

/// A run allowed one claim (`max_attempts` 1), whose worker is waiting `delay` for the model's
/// answer `text`: returned once the model has the call.
async fn a_run_with_one_claim_waiting_for(
    text: &str,
    delay: Duration,
) -> (
    MockServer,
    World,
    String,
    String,
    actix_web::rt::task::JoinHandle<Result<usize, switchboard::db::DbError>>,
) {
    let anthropic = anthropic_stand_in(vec![text_answer(text).set_delay(delay)]).await;
    let mut w = world(
        &anthropic,
        &[("SWITCHBOARD__CONNECTORS__AGENTS__MAX_ATTEMPTS", "1")],
    )
    .await;
    let ada = w.user("ada");
    let id = start_run(&mut w, &ada, json!({"prompt": "go"})).await;
    let worker = spawn_worker(&w).await;
    until_model_calls(&anthropic, 1).await;
    (anthropic, w, ada, id, worker)
}

#[actix_web::test]
async fn a_run_whose_workers_keep_dying_fails_instead_of_running_forever() {
    let (anthropic, mut w, ada, id, worker) =
        a_run_with_one_claim_waiting_for("never", Duration::from_secs(60)).await;
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
async fn a_worker_answering_after_its_run_was_ended_by_another_claim_changes_nothing() {
    // A worker that seems dead (its lease runs out) but is only waiting for the model.
    let (_anthropic, mut w, ada, id, stalled) =
        a_run_with_one_claim_waiting_for("too late", Duration::from_secs(2)).await;
    w.app.clock.advance(chrono::Duration::seconds(120));
    // Another claim ends the run as interrupted too many times.
    assert_eq!(drain(&w).await, 1);
    // Then the model answers the first worker, which records its step, but the run's end
    // stays the one already made, with one status event.
    let _ = stalled.await;
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "the run was interrupted too many times");
    assert_eq!(run["final_text"], Value::Null);
    assert_eq!(
        w.sql_texts(
            "SELECT string_agg(data->>'status', ',' ORDER BY id) AS t FROM agent_events \
             WHERE event_type = 'status'"
        ),
        ["queued,running,failed"],
        "no status event after the run's end"
    );
    assert_eq!(
        w.sql_texts("SELECT count(*)::text AS t FROM agent_steps WHERE kind = 'model'"),
        ["1"],
        "the late answer was recorded, as a step of an ended run"
    );
}
