//! A session's conversation: the thought first, then actions and the response once; a
//! `prompted` follow-up; `stop`; agent-side signals on a prompt.

use super::*;

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
