//! Calls: the result-size cap and timeout, what the call record keeps, the call-path cache,
//! the `switchboard mcp` CLI, and the endpoints in the OpenAPI document.

use super::*;

#[actix_web::test]
async fn mcp_endpoints_are_in_the_openapi_document() {
    let mut w = World::new().await;
    let res = w
        .app
        .call(
            switchboard::platform::role::Role::Connectors,
            TestRequest::get().uri("/openapi.json"),
        )
        .await;
    let doc = res.json();
    for path in [
        "/api/mcp-servers",
        "/api/mcp-servers/{id}",
        "/api/mcp-servers/{id}/tools",
        "/api/mcp-servers/{id}/tools/{name}/call",
        "/api/tools",
        "/api/tools/{name}/call",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

#[actix_web::test]
async fn result_size_cap_and_timeout_are_enforced() {
    let modern = Modern::start(None).await;
    let mut w = World::with_env(&[
        ("SWITCHBOARD__CONNECTORS__MCP__MAX_RESULT_BYTES", "8192"),
        ("SWITCHBOARD__CONNECTORS__MCP__REQUEST_TIMEOUT_SECS", "1"),
    ])
    .await;
    let ada = w.user("ada");
    let id = add_id(&mut w, &ada, &modern.url()).await;
    let res = call(&mut w, &ada, &id, "big", json!({})).await;
    assert_eq!(res.status, 502, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["code"], "MCP_RESULT_TOO_LARGE", "{}", res.json());
    let res = call(&mut w, &ada, &id, "slow", json!({})).await;
    assert_eq!(res.status, 504, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["code"], "MCP_TIMEOUT");
    // Both failures are recorded with their code.
    // Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    let rows =
        w.sql_texts("SELECT concat_ws('|', tool, ok, error) AS t FROM mcp_tool_calls ORDER BY id");
    assert_eq!(
        rows,
        vec!["big|f|MCP_RESULT_TOO_LARGE", "slow|f|MCP_TIMEOUT"]
    );
}

fn switchboard_mcp(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .env("APP_ENV", "test")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("mcp")
        .args(args)
        .output()
        .expect("run switchboard mcp")
}

#[test]
fn cli_lists_and_calls_tools_on_server_everything() {
    let everything = Everything::start();
    let url = everything.url();

    let out = switchboard_mcp(&["tools", &url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["era"], "legacy");
    assert!(
        listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );

    let out = switchboard_mcp(&["call", &url, "echo", r#"{"message":"from the cli"}"#]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["content"][0]["text"], "Echo: from the cli");

    // Bad input: exit 2 with one line on stderr, nothing on stdout.
    for args in [
        vec!["call", url.as_str(), "get-sum", r#"{"a":"x"}"#],
        vec!["call", url.as_str(), "echo", "not json"],
        vec!["call", url.as_str(), "no-such-tool", "{}"],
        vec!["tools", "http://169.254.169.254/mcp"],
    ] {
        let out = switchboard_mcp(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    }
}

#[actix_web::test]
async fn cli_exit_codes_for_authorization_and_is_error() {
    let modern = Modern::start(Some("cli_token_1")).await;
    let url = modern.url();
    let out = switchboard_mcp(&["tools", &url]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = switchboard_mcp(&["call", &url, "fail", "{}", "--bearer", "cli_token_1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["isError"], true);
}

#[actix_web::test]
async fn arguments_and_results_are_recorded_only_when_configured() {
    let modern = Modern::start(None).await;
    let mut w = World::with_env(&[("SWITCHBOARD__CONNECTORS__MCP__RECORD_PAYLOADS", "true")]).await;
    let ada = w.user("ada");
    let id = add_id(&mut w, &ada, &modern.url()).await;
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 4, "b": 5 })).await;
    assert_eq!(res.status, 200);
    // Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    let rows = w.sql_texts(
        "SELECT concat_ws('|', arguments::text, result->'structuredContent'->>'sum') AS t FROM mcp_tool_calls",
    );
    assert_eq!(rows, vec![r#"{"a": 4, "b": 5}|9.0"#]);
}

#[actix_web::test]
async fn the_call_path_cache_is_short_owner_checked_and_dropped_on_local_changes() {
    let modern = Modern::start(None).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let id = add_id(&mut w, &ada, &modern.url()).await;
    call_ok(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    // Cached for ada only: bob still gets the database's answer.
    let res = call(&mut w, &bob, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 404);

    // Another process deletes the row: this one keeps using its cached copy until the TTL
    // (5 s, config/default.toml) runs out on the injected clock, then sees it gone.
    assert_eq!(
        w.exec(&format!("DELETE FROM mcp_servers WHERE id = '{id}'")),
        1
    );
    call_ok(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    w.app.clock.advance(chrono::Duration::milliseconds(5001));
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 404, "{}", String::from_utf8_lossy(&res.body));

    // A delete through this process is seen at once.
    let id = add_id(&mut w, &ada, &modern.url()).await;
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 200);
    let res = w
        .send(
            &ada,
            TestRequest::delete().uri(&format!("/api/mcp-servers/{id}")),
        )
        .await;
    assert_eq!(res.status, 200);
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["code"], "MCP_SERVER_NOT_FOUND");

    // Every call that reached the server is recorded, by the background writer.
    w.app.platform.jobs.flush().await;
    assert_eq!(
        w.sql_texts("SELECT count(*)::text AS t FROM mcp_tool_calls WHERE ok"),
        ["3"]
    );
}
