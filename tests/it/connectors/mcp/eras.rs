//! Protocol eras: server-everything (legacy) and a modern stand-in detected, listed and called;
//! legacy session expiry; detecting again when the cached era stops holding; a call not sent
//! again when the connection drops.

use super::*;

#[actix_web::test]
async fn legacy_server_everything_detected_listed_and_called() {
    let everything = Everything::start();
    let mut w = World::new().await;
    let ada = w.user("ada");

    let server = add_ok(
        &mut w,
        &ada,
        json!({ "url": everything.url(), "name": "Everything" }),
    )
    .await;
    assert_eq!(server["era"], "legacy");
    assert_eq!(server["protocol_version"], "2025-11-25");
    assert_eq!(server["needs_authorization"], false);
    assert_eq!(server["name"], "Everything");
    assert_eq!(server["server_info"]["name"], "mcp-servers/everything");
    let id = server["id"].as_str().unwrap().to_owned();

    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}/tools")).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let names = tool_names(&res);
    for t in ["echo", "get-sum", "get-structured-content"] {
        assert!(names.contains(&t.to_owned()), "{t} in {names:?}");
    }

    let res = call(
        &mut w,
        &ada,
        &id,
        "echo",
        json!({ "message": "hello from connectors" }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["isError"], false);
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], "Echo: hello from connectors");
    // The MCP server's share of the call, in milliseconds (what bench/mcp.sh subtracts).
    let timing = res.headers.get("server-timing").unwrap().to_str().unwrap();
    // ... and switchboard's own share of the handler's time, beside it.
    let metric = |name: &str| -> f64 {
        timing
            .split(", ")
            .find_map(|m| m.strip_prefix(name)?.strip_prefix(";dur="))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {timing}"))
    };
    assert!(metric("upstream") > 0.0, "{timing}");
    assert!(metric("own") >= 0.0, "{timing}");

    let res = call(
        &mut w,
        &ada,
        &id,
        "get-structured-content",
        json!({ "location": "New York" }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!(
        res.json()["structuredContent"].is_object(),
        "{}",
        res.json()
    );

    // Invalid arguments are refused before anything is sent.
    let res = call(&mut w, &ada, &id, "get-sum", json!({ "a": "one" })).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "INVALID_ARGUMENTS");
    let msg = res.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("$.b: is required") && msg.contains("$.a: expected number"),
        "{msg}"
    );

    // Every call is recorded, without arguments or results by default.
    // Call records are written by a background writer: wait for it.
    w.app.platform.jobs.flush().await;
    let rows = w.sql_texts(
        "SELECT concat_ws('|', tool, ok, coalesce(error, '-'), arguments IS NULL, result IS NULL, owner_id) AS t \
         FROM mcp_tool_calls ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            "echo|t|-|t|t|ada",
            "get-structured-content|t|-|t|t|ada",
            "get-sum|f|INVALID_ARGUMENTS|t|t|ada",
        ]
    );
}

#[actix_web::test]
async fn legacy_session_expiry_reinitializes_once() {
    let mut everything = Everything::start();
    let (mut w, ada, id) = ada_with_server(&everything.url()).await;
    let res = call(&mut w, &ada, &id, "echo", json!({ "message": "one" })).await;
    assert_eq!(res.status, 200);

    // The server forgets every session (a restart): the next call re-initializes and succeeds.
    everything.restart();
    let res = call_ok(&mut w, &ada, &id, "echo", json!({ "message": "two" })).await;
    assert_eq!(res.json()["content"][0]["text"], "Echo: two");
}

#[actix_web::test]
async fn modern_server_detected_paginated_and_is_error() {
    let modern = Modern::start(None).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let server = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await;
    assert_eq!(server["era"], "modern");
    assert_eq!(server["protocol_version"], "2026-07-28");
    assert_eq!(server["server_info"]["name"], "modern-stand-in");
    assert_eq!(server["server_info"]["title"], "Modern stand-in");
    let id = server["id"].as_str().unwrap().to_owned();
    // Detection sent a modern request and no legacy initialize, then `server/discover`.
    assert_eq!(
        modern.methods().await,
        vec!["tools/list", "server/discover"]
    );

    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}/tools")).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    // Both pages; the tool with an invalid x-mcp-header annotation is dropped.
    assert_eq!(
        tool_names(&res),
        vec!["add", "fail", "page-two", "big", "slow"]
    );
    let before = modern.methods().await.len();
    // Within ttlMs the list is reused.
    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}/tools")).await;
    assert_eq!(res.status, 200);
    assert_eq!(modern.methods().await.len(), before);
    // After ttlMs (60 s on the injected clock) it is fetched again.
    w.app.clock.advance(chrono::Duration::seconds(61));
    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}/tools")).await;
    assert_eq!(res.status, 200);
    assert_eq!(modern.methods().await.len(), before + 2);

    let res = call_ok(&mut w, &ada, &id, "add", json!({ "a": 2, "b": 3.5 })).await;
    assert_eq!(res.json()["structuredContent"], json!({ "sum": 5.5 }));
    assert_eq!(res.json()["isError"], false);

    let res = call(&mut w, &ada, &id, "fail", json!({})).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["isError"], true);
    assert_eq!(res.json()["content"][0]["text"], "it broke");

    // Schema-invalid: nothing sent.
    let calls_before = modern
        .methods()
        .await
        .iter()
        .filter(|m| *m == "tools/call")
        .count();
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 2, "c": 1 })).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "INVALID_ARGUMENTS");
    let calls_after = modern
        .methods()
        .await
        .iter()
        .filter(|m| *m == "tools/call")
        .count();
    assert_eq!(calls_before, calls_after);

    let res = call(&mut w, &ada, &id, "nope", json!({})).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["code"], "MCP_TOOL_NOT_FOUND");

    // All tools, namespaced, and callable by that name.
    let res = get(&mut w, &ada, "/api/tools").await;
    assert_eq!(res.status, 200);
    let tools = res.json()["tools"].as_array().unwrap().clone();
    assert_eq!(tools.len(), 5);
    let add_tool = tools.iter().find(|t| t["name"] == "add").unwrap();
    let ns = add_tool["namespaced_name"].as_str().unwrap().to_owned();
    assert!(
        ns.len() <= 64
            && ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{ns}"
    );
    let res = w
        .send(
            &ada,
            TestRequest::post()
                .uri(&format!("/api/tools/{ns}/call"))
                .set_json(json!({ "arguments": { "a": 1, "b": 1 } })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["structuredContent"]["sum"], 2.0);
}

#[actix_web::test]
async fn era_is_detected_again_when_the_cached_one_stops_holding() {
    let modern = Modern::start(None).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let server = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await;
    assert_eq!(server["era"], "modern");
    let id = server["id"].as_str().unwrap().to_owned();

    // The same URL now serves a legacy server (a redeploy): the cached modern era fails with a
    // plain 400, so the client detects again (legacy initialize) and the listing works.
    modern.server.reset().await;
    Mock::given(method("POST"))
        .respond_with(super::mcp_stand_ins::LegacyResponder)
        .mount(&modern.server)
        .await;
    w.app.clock.advance(chrono::Duration::seconds(61));
    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}/tools")).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(tool_names(&res), vec!["legacy-echo"]);
    let methods = modern.methods().await;
    assert_eq!(
        methods,
        vec![
            "tools/list",
            "initialize",
            "notifications/initialized",
            "tools/list"
        ]
    );
    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}")).await;
    assert_eq!(res.json()["era"], "legacy");
    assert_eq!(res.json()["protocol_version"], "2025-11-25");
}

#[actix_web::test]
async fn a_call_that_is_not_idempotent_is_not_sent_again_when_the_connection_drops() {
    let server = Dropping::start();
    let mut w = World::new().await;
    let ada = w.user("ada");
    let added = add_ok(&mut w, &ada, json!({ "url": server.url() })).await;
    assert_eq!(added["era"], "modern");
    let id = added["id"].as_str().unwrap().to_owned();

    // The server read the call and closed the connection: it may have run. Not sent again;
    // the caller is told the outcome is unknown.
    let res = call(&mut w, &ada, &id, "write", json!({})).await;
    assert_eq!(res.status, 502, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["code"], "MCP_CALL_OUTCOME_UNKNOWN", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may or may not have run"),
        "{body}"
    );
    assert_eq!(server.calls_of("write"), 1, "the call was sent again");
    // The next call is the caller's decision, and goes through.
    call_ok(&mut w, &ada, &id, "write", json!({})).await;
    assert_eq!(server.calls_of("write"), 2);

    // A read-only tool is sent once more on a fresh connection: the caller sees its result.
    let res = call_ok(&mut w, &ada, &id, "lookup", json!({})).await;
    assert_eq!(res.json()["content"][0]["text"], "lookup ran");
    assert_eq!(server.calls_of("lookup"), 2);
}
