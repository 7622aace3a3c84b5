//! Cancelling a run (queued and mid-stream), limits and bad input, no API key, and finished
//! runs pruned past retention.

use super::*;

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
    let worker = spawn_worker(&w).await;
    until_model_calls(&anthropic, 1).await;
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
    crate::common::jobs::enqueue(&w, "events_prune");
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
