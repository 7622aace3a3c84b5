//! What a session's runs post: a failed run as an error activity, an action while the run
//! still goes, an elicitation answered by the user, each run linked by external URLs.

use super::*;

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
