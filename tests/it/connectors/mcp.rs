//! MCP servers and tools through the connectors API, against real servers on 127.0.0.1:
//! server-everything (legacy era) and a modern-era stand-in. Era detection, pagination,
//! isError, arguments refused before sending, legacy session expiry, the SSRF guard,
//! ownership, sealed credentials, and the call record.

use super::World;
use super::mcp_stand_ins::{Dropping, Everything, Modern};
use crate::common::Seen;
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn add(w: &mut World, user: &str, body: Value) -> Seen {
    w.send(
        user,
        TestRequest::post().uri("/api/mcp-servers").set_json(body),
    )
    .await
}

async fn add_ok(w: &mut World, user: &str, body: Value) -> Value {
    let res = add(w, user, body).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()
}

async fn call(w: &mut World, user: &str, server: &str, tool: &str, args: Value) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri(&format!("/api/mcp-servers/{server}/tools/{tool}/call"))
            .set_json(json!({ "arguments": args })),
    )
    .await
}

async fn get(w: &mut World, user: &str, path: &str) -> Seen {
    w.send(user, TestRequest::get().uri(path)).await
}

fn tool_names(res: &Seen) -> Vec<String> {
    res.json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

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
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, json!({ "url": everything.url() })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(&mut w, &ada, &id, "echo", json!({ "message": "one" })).await;
    assert_eq!(res.status, 200);

    // The server forgets every session (a restart): the next call re-initializes and succeeds.
    everything.restart();
    let res = call(&mut w, &ada, &id, "echo", json!({ "message": "two" })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
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

    let res = call(&mut w, &ada, &id, "add", json!({ "a": 2, "b": 3.5 })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
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
async fn another_users_server_is_not_found() {
    let modern = Modern::start(None).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let id = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for res in [
        get(&mut w, &bob, &format!("/api/mcp-servers/{id}")).await,
        get(&mut w, &bob, &format!("/api/mcp-servers/{id}/tools")).await,
        call(&mut w, &bob, &id, "add", json!({ "a": 1, "b": 2 })).await,
        w.send(
            &bob,
            TestRequest::delete().uri(&format!("/api/mcp-servers/{id}")),
        )
        .await,
    ] {
        assert_eq!(res.status, 404, "{}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.json()["code"], "MCP_SERVER_NOT_FOUND");
    }
    let res = get(&mut w, &bob, "/api/mcp-servers").await;
    assert_eq!(res.json()["servers"], json!([]));
    let res = get(&mut w, &ada, "/api/mcp-servers").await;
    assert_eq!(res.json()["servers"].as_array().unwrap().len(), 1);
    // The owner can delete it; afterwards it is gone.
    let res = w
        .send(
            &ada,
            TestRequest::delete().uri(&format!("/api/mcp-servers/{id}")),
        )
        .await;
    assert_eq!(res.status, 200);
    let res = get(&mut w, &ada, &format!("/api/mcp-servers/{id}")).await;
    assert_eq!(res.status, 404);
}

#[actix_web::test]
async fn bearer_is_sealed_and_a_401_means_needs_authorization() {
    let token = "mcp_bearer_plaintext_7f3a";
    let modern = Modern::start(Some(token)).await;
    let mut w = World::new().await;
    let ada = w.user("ada");

    // Without the token the server answers 401: added, and marked as needing authorization.
    let server = add_ok(
        &mut w,
        &ada,
        json!({ "url": modern.url(), "name": "no token" }),
    )
    .await;
    assert_eq!(server["needs_authorization"], true);
    assert_eq!(server["era"], Value::Null);
    let res = get(
        &mut w,
        &ada,
        &format!("/api/mcp-servers/{}/tools", server["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(res.status, 409);
    assert_eq!(res.json()["code"], "MCP_AUTHORIZATION_REQUIRED");

    // With it (a second entry needs another URL: the same endpoint with a query).
    let url = format!("{}?k=1", modern.url());
    let server = add_ok(&mut w, &ada, json!({ "url": url, "bearer": token })).await;
    assert_eq!(server["needs_authorization"], false);
    assert_eq!(server["has_credentials"], true);
    assert!(!server.to_string().contains(token));
    let id = server["id"].as_str().unwrap().to_owned();
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));

    let tables = w.sql_texts(
        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
    );
    let mut dump = String::new();
    for table in &tables {
        for row in w.sql_texts(&format!(
            "SELECT row_to_json(x)::text AS t FROM \"{table}\" x"
        )) {
            dump.push_str(&row);
        }
    }
    assert!(
        dump.contains("\"access_token\":\"v1:"),
        "the credential is stored sealed"
    );
    assert!(
        !dump.contains(token),
        "the bearer is in a table in plaintext"
    );
}

#[actix_web::test]
async fn ssrf_guard_refuses_internal_addresses() {
    // Loopback is allowed in tests by config; this world turns it off.
    let modern = Modern::start(None).await;
    let mut w = World::with_env(&[("SWITCHBOARD__CONNECTORS__MCP__ALLOW_LOOPBACK", "false")]).await;
    let ada = w.user("ada");
    let port = modern.server.address().port();
    for url in [
        modern.url(),                                         // 127.0.0.1 literal
        format!("http://[::1]:{port}/mcp"),                   // IPv6 loopback
        format!("http://localhost:{port}/mcp"),               // a name resolving to loopback
        "http://10.1.2.3/mcp".to_owned(),                     // 10/8
        "http://169.254.169.254/latest/meta-data".to_owned(), // metadata
        "http://192.168.0.10:8080/mcp".to_owned(),
        "http://[fd00::1]/mcp".to_owned(),
        "http://0.0.0.0/mcp".to_owned(),
        "http://user:pw@example.com/mcp".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        let res = add(&mut w, &ada, json!({ "url": url })).await;
        assert_eq!(
            res.status,
            400,
            "{url}: {}",
            String::from_utf8_lossy(&res.body)
        );
        assert_eq!(res.json()["code"], "URL_NOT_ALLOWED", "{url}");
        if url.contains("localhost") {
            // Refused on the resolved address, at connect time.
            let msg = res.json()["message"].as_str().unwrap().to_owned();
            assert!(msg.contains("loopback"), "{msg}");
        }
    }
    // Nothing reached the server and nothing was stored.
    assert!(modern.methods().await.is_empty());
    assert_eq!(
        w.sql_texts("SELECT id AS t FROM mcp_servers"),
        Vec::<String>::new()
    );
}

#[actix_web::test]
async fn ssrf_guard_refuses_metadata_and_redirects_even_with_loopback_allowed() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    for url in [
        "http://169.254.169.254/mcp",
        "http://10.0.0.1/mcp",
        "http://[fe80::1]/mcp",
    ] {
        let res = add(&mut w, &ada, json!({ "url": url })).await;
        assert_eq!(res.status, 400, "{url}");
        assert_eq!(res.json()["code"], "URL_NOT_ALLOWED");
    }
    // A server that redirects to a private address: not followed.
    let redirector = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "http://10.0.0.7/mcp"))
        .mount(&redirector)
        .await;
    let res = add(
        &mut w,
        &ada,
        json!({ "url": format!("{}/mcp", redirector.uri()) }),
    )
    .await;
    assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["code"], "URL_NOT_ALLOWED");
    // Same for a redirect to loopback on another origin (another port).
    let other = MockServer::start().await;
    let redirector2 = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(308).insert_header("location", format!("{}/mcp", other.uri())),
        )
        .mount(&redirector2)
        .await;
    let res = add(
        &mut w,
        &ada,
        json!({ "url": format!("{}/mcp", redirector2.uri()) }),
    )
    .await;
    assert_eq!(res.status, 400);
    assert!(other.received_requests().await.unwrap().is_empty());
    assert_eq!(
        w.sql_texts("SELECT id AS t FROM mcp_servers"),
        Vec::<String>::new()
    );
}

#[actix_web::test]
async fn catalog_entry_reuses_the_provider_connection_token() {
    let modern = Modern::start(Some("lin_access_for_mcp")).await;
    let url = modern.url();
    let mut w = World::with_env(&[(
        "SWITCHBOARD__CONNECTORS__PROVIDERS__LINEAR__MCP_URL",
        url.as_str(),
    )])
    .await;
    let ada = w.user("ada");
    w.connect_linear(
        &ada,
        "code_m1",
        "lin_access_for_mcp",
        "lin_refresh_m1",
        "v1",
        "o1",
    )
    .await;
    let server = add_ok(&mut w, &ada, json!({ "provider": "linear" })).await;
    assert_eq!(server["provider"], "linear");
    assert_eq!(server["uses_connection"], true);
    assert_eq!(server["has_credentials"], false);
    assert_eq!(server["era"], "modern");
    let id = server["id"].as_str().unwrap().to_owned();
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 1 })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));

    let res = add(&mut w, &ada, json!({ "provider": "nope" })).await;
    assert_eq!(res.status, 400);
    let res = add(&mut w, &ada, json!({ "provider": "linear" })).await;
    assert_eq!(res.status, 409);
    assert_eq!(res.json()["code"], "MCP_SERVER_EXISTS");
}

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
    let id = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
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
async fn arguments_and_results_are_recorded_only_when_configured() {
    let modern = Modern::start(None).await;
    let mut w = World::with_env(&[("SWITCHBOARD__CONNECTORS__MCP__RECORD_PAYLOADS", "true")]).await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let id = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    // Cached for ada only: bob still gets the database's answer.
    let res = call(&mut w, &bob, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 404);

    // Another process deletes the row: this one keeps using its cached copy until the TTL
    // (5 s, config/default.toml) runs out on the injected clock, then sees it gone.
    assert_eq!(
        w.exec(&format!("DELETE FROM mcp_servers WHERE id = '{id}'")),
        1
    );
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    w.app.clock.advance(chrono::Duration::milliseconds(5001));
    let res = call(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;
    assert_eq!(res.status, 404, "{}", String::from_utf8_lossy(&res.body));

    // A delete through this process is seen at once.
    let id = add_ok(&mut w, &ada, json!({ "url": modern.url() })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let res = call(&mut w, &ada, &id, "write", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(server.calls_of("write"), 2);

    // A read-only tool is sent once more on a fresh connection: the caller sees its result.
    let res = call(&mut w, &ada, &id, "lookup", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["content"][0]["text"], "lookup ran");
    assert_eq!(server.calls_of("lookup"), 2);
}
