//! The workspace around a session: a delegated issue's state, connections made as a user,
//! the workspace's own Linear MCP tools with the session's token.

use super::*;

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
