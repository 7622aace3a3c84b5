//! The tool loop: parallel tool calls and their result order, a tool error, max turns and
//! the token budget, retries and a 4xx, a tool past its timeout.

use super::*;

#[actix_web::test]
async fn a_run_calls_two_tools_in_parallel_recovers_from_a_tool_error_and_ends() {
    two_tools_in_parallel_then_a_tool_error().await;
}

/// The same run on a runtime like the servers': multi-threaded, with the job on a worker thread
/// (run by `run_until_idle`, not the servers' claim loop), so the loop writes its steps in
/// place (`block_in_place`) and its writes aside run on the other worker thread, as in
/// production. The tests' actix runtime has one thread, where `db::query_in_place` falls back
/// to `query`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_run_on_a_multi_threaded_runtime() {
    tokio::task::LocalSet::new()
        .run_until(two_tools_in_parallel_then_a_tool_error())
        .await;
}

async fn two_tools_in_parallel_then_a_tool_error() {
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
    // On a worker thread of the runtime (a task of its own), as the servers run jobs.
    let runner = runner(&w);
    let worker = tokio::spawn(async move { runner.run_until_idle().await });
    assert_eq!(worker.await.unwrap().unwrap(), 1);

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

/// Ada with server-everything, and a model that answers a first run by calling echo
/// (`readOnlyHint: true`) and then "Read.", a second by calling toggle-simulated-logging (no
/// such hint) and then "Toggled.".
async fn read_then_toggle() -> (Everything, MockServer, World, String) {
    let everything = Everything::start();
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let (echo, _) = add_everything(&mut w, &ada, &everything).await;
    let toggle = tool_name(&mut w, &ada, "toggle-simulated-logging").await;
    anthropic.reset().await;
    let script = vec![
        tool_calls(&[("toolu_r", &echo, json!({"message": "hi"}))]),
        text_answer("Read."),
        tool_calls(&[("toolu_w", &toggle, json!({}))]),
        text_answer("Toggled."),
    ];
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(Script(Mutex::new(script.into())))
        .mount(&anthropic)
        .await;
    (everything, anthropic, w, ada)
}

#[actix_web::test]
async fn a_step_waits_for_the_wal_flush_only_before_a_tool_that_may_change_something() {
    let (_everything, _anthropic, mut w, ada) = read_then_toggle().await;
    // Each write records the commit mode its transaction will use (triggers fire at the end
    // of the statement, after the statement's own `set_config`).
    for sql in [
        "CREATE TABLE commit_modes (id bigserial, what text, mode text)",
        "CREATE FUNCTION note_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO commit_modes (what, mode) VALUES ('run:' || NEW.status || \
             CASE WHEN OLD.tool_table IS NULL AND NEW.tool_table IS NOT NULL \
             THEN '+table' ELSE '' END, current_setting('synchronous_commit')); \
           RETURN NULL; END $$",
        "CREATE FUNCTION note_step() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO commit_modes (what, mode) VALUES ( \
             NEW.kind || ':' || NEW.status || ':' || NEW.turn, \
             current_setting('synchronous_commit')); RETURN NULL; END $$",
        "CREATE TRIGGER steps_mode AFTER INSERT OR UPDATE ON agent_steps \
           FOR EACH ROW EXECUTE FUNCTION note_step()",
        "CREATE TRIGGER runs_mode AFTER UPDATE ON agent_runs \
           FOR EACH ROW EXECUTE FUNCTION note_run()",
    ] {
        w.exec(sql);
    }

    let modes = |w: &World| {
        let m = w.sql_texts("SELECT concat(what, '=', mode) AS t FROM commit_modes ORDER BY id");
        w.exec("DELETE FROM commit_modes");
        m
    };
    for (prompt, text) in [("Read", "Read."), ("Toggle", "Toggled.")] {
        let id = start_run(&mut w, &ada, json!({ "prompt": prompt })).await;
        assert_eq!(drain(&w).await, 1);
        let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
            .await
            .json();
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["final_text"], text);
    }
    let all = modes(&w);
    // The first run: its start (the claim's update) is durable; the tool table, the step
    // asking for echo, echo's result and the run's end are not (the job's completion is).
    // The second: the step asking for the tool that changes something is flushed first.
    // Within one statement the run's update fires before the step rows'.
    assert_eq!(
        all,
        [
            "run:running=on",
            "run:running+table=off",
            "run:running=off",
            "model:ok:1=off",
            "tool:started:1=off",
            "tool:ok:1=off",
            "run:completed=off",
            "model:ok:2=off",
            "run:running=on",
            "run:running+table=off",
            "run:running=on",
            "model:ok:1=on",
            "tool:started:1=on",
            "tool:ok:1=off",
            "run:completed=off",
            "model:ok:2=off",
        ],
    );
}

#[actix_web::test]
async fn a_step_asking_only_for_read_only_tools_is_written_while_they_run() {
    let (_everything, anthropic, mut w, ada) = read_then_toggle().await;
    use diesel::RunQueryDsl;
    // Holding this lock, no step can be written (reads go on).
    let mut blocker = w.app.db.conn();
    let block = |c: &mut diesel::PgConnection| {
        for sql in ["BEGIN", "LOCK TABLE agent_steps IN EXCLUSIVE MODE"] {
            diesel::sql_query(sql).execute(c).unwrap();
        }
    };
    let steps = "SELECT concat(kind, ':', status, ':', turn) AS t FROM agent_steps ORDER BY id";

    // Echo declares `readOnlyHint`: it runs, and the model is asked again, while its step
    // waits for the lock.
    block(&mut blocker);
    let id = start_run(&mut w, &ada, json!({ "prompt": "Read" })).await;
    let worker = spawn_worker(&w).await;
    until_model_calls(&anthropic, 2).await;
    until_a_write_waits_for_a_lock(&w).await;
    assert_eq!(
        tool_results(&requests(&anthropic).await[1])[0]["content"][0]["text"],
        "Echo: hi"
    );
    assert!(w.sql_texts(steps).is_empty());
    unblock_and_finish(&mut w, &ada, &mut blocker, worker, &id, "Read.").await;

    // toggle-simulated-logging may change something: it waits for its step.
    w.exec("DELETE FROM agent_steps");
    block(&mut blocker);
    let id = start_run(&mut w, &ada, json!({ "prompt": "Toggle" })).await;
    let worker = spawn_worker(&w).await;
    until_a_write_waits_for_a_lock(&w).await;
    assert_eq!(requests(&anthropic).await.len(), 3, "the tool did not run");
    unblock_and_finish(&mut w, &ada, &mut blocker, worker, &id, "Toggled.").await;
}

/// Ends the blocking transaction, lets the worker finish, and checks the run's answer and that
/// its steps were written in the order they happened, nothing lost.
async fn unblock_and_finish(
    w: &mut World,
    user: &str,
    blocker: &mut diesel::PgConnection,
    worker: actix_web::rt::task::JoinHandle<Result<usize, switchboard::db::DbError>>,
    id: &str,
    text: &str,
) {
    use diesel::RunQueryDsl;
    diesel::sql_query("COMMIT").execute(blocker).unwrap();
    assert_eq!(worker.await.unwrap().unwrap(), 1);
    let run = get(w, user, &format!("/api/agent-runs/{id}")).await.json();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["final_text"], text);
    assert_eq!(
        w.sql_texts(
            "SELECT concat(kind, ':', status, ':', turn) AS t FROM agent_steps ORDER BY id"
        ),
        ["model:ok:1", "tool:ok:1", "model:ok:2"]
    );
}

/// Waits (up to 20 s) until one statement of the test's database waits for a lock.
async fn until_a_write_waits_for_a_lock(w: &World) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let waiting = "SELECT count(*)::text AS t FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    while w.sql_texts(waiting) != ["1"] {
        assert!(std::time::Instant::now() < deadline, "no write waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Answers a conversation's first model call with a call of `tool`, and any later one with
/// "Done.": the same answers whichever claim asks.
struct ByTurn(String);

impl wiremock::Respond for ByTurn {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        if body["messages"].as_array().map_or(0, Vec::len) == 1 {
            tool_calls(&[("toolu_r", &self.0, json!({"message": "hi"}))])
        } else {
            text_answer("Done.")
        }
    }
}

#[actix_web::test]
async fn a_step_write_that_fails_while_its_tools_run_fails_the_claim_and_nothing_half_written_stays()
 {
    let everything = Everything::start();
    let anthropic = anthropic_stand_in(vec![]).await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    let (echo, _) = add_everything(&mut w, &ada, &everything).await;
    anthropic.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ByTurn(echo))
        .mount(&anthropic)
        .await;
    // The step asking for echo (read-only: written while it runs) cannot be written.
    for sql in [
        "CREATE FUNCTION refuse_model_steps() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'no space left on device'; END $$",
        "CREATE TRIGGER refuse_model_steps BEFORE INSERT ON agent_steps FOR EACH ROW \
           WHEN (NEW.kind = 'model') EXECUTE FUNCTION refuse_model_steps()",
    ] {
        w.exec(sql);
    }
    let id = start_run(&mut w, &ada, json!({ "prompt": "Read" })).await;
    assert_eq!(drain(&w).await, 1);
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "running", "retried, not ended: {run}");
    assert_eq!(run["turns"], 0);
    let steps = "SELECT concat(kind, ':', status, ':', turn) AS t FROM agent_steps ORDER BY id";
    assert!(
        w.sql_texts(steps).is_empty(),
        "the tool's result was not written without its step"
    );
    let job = "SELECT concat(state, ':', attempts, ':', coalesce(last_error, '')) AS t \
               FROM jobs WHERE kind = 'agent_run'";
    let job_row = w.sql_texts(job);
    assert!(
        job_row[0].starts_with("queued:1:") && job_row[0].contains("no space left on device"),
        "{job_row:?}"
    );

    w.exec("DROP TRIGGER refuse_model_steps ON agent_steps");
    w.app.clock.advance(chrono::Duration::seconds(60));
    assert_eq!(drain(&w).await, 1);
    let run = get(&mut w, &ada, &format!("/api/agent-runs/{id}"))
        .await
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["final_text"], "Done.");
    assert_eq!(
        w.sql_texts(steps),
        ["model:ok:1", "tool:ok:1", "model:ok:2"]
    );
    // Echo is read-only: the first claim ran it before its step's write failed, the second
    // again. Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    assert_eq!(
        w.sql_texts("SELECT count(*)::text AS t FROM mcp_tool_calls"),
        ["2"]
    );
}
