//! The SSE stream of a run: every step, resume, the owner's only, opened before the run, and
//! woken by the run's own commits.

use super::*;
use switchboard::jobs::Runner;

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

#[actix_web::test]
async fn long_text_streams_as_deltas_written_without_waiting_for_the_flush() {
    // 1,100 bytes in two deltas: each fills the 512-byte buffer and is written at once.
    let text = "lorem ipsum ".repeat(92)[..1100].to_owned();
    let anthropic = anthropic_stand_in(vec![text_answer(&text)]).await;
    let mut w = world(&anthropic, &[]).await;
    let ada = w.user("ada");
    for sql in [
        "CREATE TABLE commit_modes (what text, mode text)",
        "CREATE FUNCTION note_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO commit_modes VALUES (NEW.event_type, current_setting('synchronous_commit')); \
           RETURN NULL; END $$",
        "CREATE TRIGGER events_mode AFTER INSERT ON agent_events \
           FOR EACH ROW WHEN (NEW.event_type = 'text_delta') EXECUTE FUNCTION note_event()",
    ] {
        w.exec(sql);
    }
    let id = start_run(&mut w, &ada, json!({"prompt": "a long answer"})).await;
    drain(&w).await;

    let res = get(&mut w, &ada, &format!("/api/agent-runs/{id}/events")).await;
    let events = parse_sse(&res.body);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(_, k, _)| k == "text_delta")
        .map(|(_, _, d)| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas.len(), 2, "{events:?}");
    assert_eq!(deltas.concat(), text);
    assert_eq!(
        w.sql_texts("SELECT concat(what, '=', mode) AS t FROM commit_modes"),
        ["text_delta=off", "text_delta=off"]
    );
}
