//! MCP authorization (spec §5.5) through the connectors API and the CLI: the full flow against
//! the SDK's real OAuth example server (challenge → metadata → dynamic registration → PKCE +
//! `resource` → callback → complete → tools), state reuse, another user redeeming the code,
//! refresh and step-up against a stand-in, the SSRF guard on discovered URLs, `iss`, and no
//! token in any table in plaintext.

use super::mcp_oauth_stand_ins::{Behaviour, OAuthStandIn, SdkOAuthServer};
use super::{APP_ORIGIN, World, query};
use crate::common::Seen;
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use switchboard::platform::role::Role;
use url::Url;

const CALLBACK: &str = "http://connectors.test/api/mcp-servers/callback";

async fn add_ok(w: &mut World, user: &str, url: &str) -> Value {
    let res = w
        .send(
            user,
            TestRequest::post()
                .uri("/api/mcp-servers")
                .set_json(json!({ "url": url })),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()
}

async fn authorize(w: &mut World, user: &str, id: &str, body: Value) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri(&format!("/api/mcp-servers/{id}/authorize"))
            .set_json(body),
    )
    .await
}

async fn authorize_url(w: &mut World, user: &str, id: &str) -> Url {
    let res = authorize(
        w,
        user,
        id,
        json!({ "redirect_to": format!("{APP_ORIGIN}/done") }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    Url::parse(res.json()["url"].as_str().unwrap()).unwrap()
}

/// The browser at the authorization server: its answer's `Location` (it auto-approves).
async fn follow(url: &Url) -> Url {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(url.clone()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302, "{:?}", res.text().await);
    Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

/// The browser arriving at our callback (no bearer token).
async fn callback(w: &mut World, location: &Url) -> Seen {
    let path = format!("{}?{}", location.path(), location.query().unwrap_or(""));
    w.app
        .call(Role::Connectors, TestRequest::get().uri(&path))
        .await
}

async fn complete(w: &mut World, user: &str, code: &str) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri("/api/mcp-servers/complete")
            .set_json(json!({ "code": code })),
    )
    .await
}

/// authorize → the authorization server → our callback → the one-time code.
async fn grant_code(w: &mut World, user: &str, id: &str) -> String {
    let url = authorize_url(w, user, id).await;
    let back = follow(&url).await;
    let res = callback(w, &back).await;
    w.authorized_code(&res)
}

async fn call(w: &mut World, user: &str, id: &str, tool: &str, args: Value) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri(&format!("/api/mcp-servers/{id}/tools/{tool}/call"))
            .set_json(json!({ "arguments": args })),
    )
    .await
}

fn dump(w: &World) -> String {
    let tables = w.sql_texts(
        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
    );
    let mut out = String::new();
    for table in &tables {
        for row in w.sql_texts(&format!(
            "SELECT row_to_json(x)::text AS t FROM \"{table}\" x"
        )) {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

#[actix_web::test]
async fn sdk_example_full_flow_with_registration_and_owner_binding() {
    let sdk = SdkOAuthServer::start();
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let server = add_ok(&mut w, &ada, &sdk.url()).await;
    assert_eq!(server["needs_authorization"], true);
    let id = server["id"].as_str().unwrap().to_owned();

    // Another user's server: 404, as for every other endpoint.
    let res = authorize(&mut w, &bob, &id, json!({})).await;
    assert_eq!(res.status, 404);

    let url = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(url.host_str(), Some("localhost"));
    assert_eq!(url.port(), Some(sdk.auth_port));
    assert_eq!(url.path(), "/authorize");
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query(&url, "code_challenge").map(|c| c.len()), Some(43));
    assert_eq!(query(&url, "resource"), Some(sdk.url()));
    assert_eq!(query(&url, "scope").as_deref(), Some("mcp:tools"));
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(CALLBACK));
    // Registered dynamically, kept per issuer (the client secret sealed).
    let clients = w.sql_texts(
        "SELECT issuer || '|' || client_id || '|' || left(client_secret, 3) AS t FROM mcp_oauth_clients",
    );
    assert_eq!(clients.len(), 1);
    let client_id = query(&url, "client_id").unwrap();
    assert_eq!(
        clients[0],
        format!("http://localhost:{}/|{client_id}|v1:", sdk.auth_port)
    );

    let back = follow(&url).await;
    assert!(back.as_str().starts_with(CALLBACK), "{back}");
    let res = callback(&mut w, &back).await;
    let code = w.authorized_code(&res);

    // The state works once.
    let again = callback(&mut w, &back).await;
    assert_eq!(again.status, 302);
    let location = Url::parse(again.header("location").unwrap()).unwrap();
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("state_already_used")
    );
    assert!(query(&location, "code").is_none());

    // Someone else redeeming the code attaches nothing, and burns it.
    let res = complete(&mut w, &bob, &code).await;
    assert_eq!(res.status, 404);
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 404);
    let res = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/mcp-servers/{id}")),
        )
        .await;
    assert_eq!(res.json()["has_credentials"], false);
    assert_eq!(
        w.sql_texts("SELECT server_id AS t FROM mcp_credentials")
            .len(),
        0
    );

    // The owner, this time: the second flow reuses the registration.
    let code = grant_code(&mut w, &ada, &id).await;
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["status"], "authorized");
    assert_eq!(body["server"]["has_credentials"], true);
    assert_eq!(body["server"]["needs_authorization"], false);
    assert_eq!(
        w.sql_texts("SELECT client_id AS t FROM mcp_oauth_clients"),
        vec![client_id]
    );

    let res = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/mcp-servers/{id}/tools")),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = call(&mut w, &ada, &id, "greet", json!({ "name": "Ada" })).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["content"][0]["text"], "Hello, Ada!");

    // Bob still cannot use it.
    let res = call(&mut w, &bob, &id, "greet", json!({ "name": "Bob" })).await;
    assert_eq!(res.status, 404);

    let rows = dump(&w);
    for code in &w.grant_codes {
        assert!(!rows.contains(code.as_str()), "a grant code is in a table");
    }
    assert!(rows.contains("\"access_token\":\"v1:"));
}

#[actix_web::test]
async fn refresh_step_up_and_iss_against_a_stand_in() {
    let logs = crate::common::logs::capture();
    let standin = OAuthStandIn::start(Behaviour::default()).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The scope comes from the resource metadata (the challenge names none); `resource` is the
    // server's canonical URL; the issuer has a path, so metadata came from the path-form URL.
    let code = grant_code(&mut w, &ada, &id).await;
    {
        let seen = standin.seen.lock().unwrap();
        assert_eq!(seen.registrations, 1);
        let q = &seen.authorize_queries[0];
        assert_eq!(q["scope"], "read");
        assert_eq!(q["resource"], standin.url());
        let g = &seen.token_grants[0];
        assert_eq!(g["grant_type"], "authorization_code");
        assert_eq!(g["resource"], standin.url());
        assert_eq!(g["redirect_uri"], CALLBACK);
    }
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["content"][0]["text"], "whoami with read");
    let first_token = standin
        .seen
        .lock()
        .unwrap()
        .bearers
        .last()
        .cloned()
        .unwrap();

    // An hour later the access token is refreshed (with `resource`) before it is used.
    w.app.clock.advance(chrono::Duration::seconds(3600));
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    {
        let seen = standin.seen.lock().unwrap();
        let g = seen.token_grants.last().unwrap();
        assert_eq!(g["grant_type"], "refresh_token");
        assert_eq!(g["resource"], standin.url());
        assert_ne!(seen.bearers.last().unwrap(), &first_token);
    }
    assert_eq!(
        w.sql_texts("SELECT (refresh_claim IS NULL)::text AS t FROM mcp_credentials"),
        vec!["true"]
    );

    // Step-up: a 403 insufficient_scope, then authorizing again asks for the union.
    let res = call(&mut w, &ada, &id, "admin", json!({})).await;
    assert_eq!(res.status, 403, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["code"], "MCP_INSUFFICIENT_SCOPE");
    let code = grant_code(&mut w, &ada, &id).await;
    assert_eq!(
        standin.seen.lock().unwrap().authorize_queries[1]["scope"],
        "read write"
    );
    assert_eq!(standin.seen.lock().unwrap().registrations, 1);
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 200);
    let res = call(&mut w, &ada, &id, "admin", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["content"][0]["text"], "admin with read write");

    // `iss` must be the flow's issuer.
    let url = authorize_url(&mut w, &ada, &id).await;
    let mut back = follow(&url).await;
    let pairs: Vec<(String, String)> = back
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "iss" {
                (k, "http://evil.test/as".into())
            } else {
                (k, v)
            }
        })
        .collect();
    back.query_pairs_mut().clear().extend_pairs(pairs);
    let res = callback(&mut w, &back).await;
    let location = Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("validation_error")
    );
    assert!(query(&location, "code").is_none());

    // The server stops taking the token: the caller is told, and the server is marked.
    standin.forget_tokens();
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 409);
    assert_eq!(res.json()["code"], "MCP_AUTHORIZATION_REQUIRED");
    let res = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/mcp-servers/{id}")),
        )
        .await;
    assert_eq!(res.json()["needs_authorization"], true);

    // Nothing secret in any table or log line in plaintext.
    let rows = dump(&w);
    let logged = logs.text();
    assert!(
        logged.contains("MCP access token refreshed"),
        "the log is captured"
    );
    for secret in ["mcpat_", "mcprt_", "mcpsecret_1", "code-"] {
        assert!(
            !rows.contains(secret),
            "{secret} is in a table in plaintext"
        );
        assert!(!logged.contains(secret), "{secret} is in the log");
    }
    assert!(rows.contains("\"refresh_token\":\"v1:"));
}

#[actix_web::test]
async fn discovered_urls_go_through_the_ssrf_guard_and_the_issuer_is_checked() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    // Kept alive: wiremock reuses a dropped server's port, and the URL would repeat.
    let mut alive = Vec::new();
    for (authorization_server, code) in [
        ("http://169.254.169.254/", "URL_NOT_ALLOWED"),
        ("http://10.0.0.1/as", "URL_NOT_ALLOWED"),
        ("http://[fe80::1]/", "URL_NOT_ALLOWED"),
    ] {
        let standin = OAuthStandIn::start(Behaviour {
            authorization_server: Some(authorization_server.to_owned()),
            ..Behaviour::default()
        })
        .await;
        let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = authorize(&mut w, &ada, &id, json!({})).await;
        assert_eq!(res.status, 400, "{authorization_server}");
        assert_eq!(res.json()["code"], code, "{authorization_server}");
        alive.push(standin);
    }
    // Metadata that claims another issuer is refused.
    let standin = OAuthStandIn::start(Behaviour {
        metadata_issuer: Some("http://127.0.0.1:1/as".to_owned()),
        ..Behaviour::default()
    })
    .await;
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = authorize(&mut w, &ada, &id, json!({})).await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["code"], "MCP_AUTHORIZATION_FAILED");
    assert_eq!(standin.seen.lock().unwrap().registrations, 0);
    assert_eq!(
        w.sql_texts("SELECT state_hash AS t FROM mcp_auth_flows")
            .len(),
        0
    );
}

#[actix_web::test]
async fn a_client_id_metadata_document_comes_before_dynamic_registration() {
    let metadata = "https://connectors.test/mcp/client-metadata.json";
    let standin = OAuthStandIn::start(Behaviour {
        cimd_client: Some(metadata.to_owned()),
        ..Behaviour::default()
    })
    .await;
    let mut w = World::with_env(&[("CONNECTORS_URL", "https://connectors.test")]).await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(query(&url, "client_id").as_deref(), Some(metadata));
    assert_eq!(
        query(&url, "redirect_uri").as_deref(),
        Some("https://connectors.test/api/mcp-servers/callback")
    );
    let back = follow(&url).await;
    let res = callback(&mut w, &back).await;
    let code = w.authorized_code(&res);
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(standin.seen.lock().unwrap().registrations, 0);
    assert_eq!(
        w.sql_texts("SELECT issuer AS t FROM mcp_oauth_clients")
            .len(),
        0
    );

    // Over plain http the document cannot be fetched by anyone: dynamic registration instead.
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(query(&url, "client_id").as_deref(), Some("client-1"));
    assert_eq!(standin.seen.lock().unwrap().registrations, 1);
}

#[actix_web::test]
async fn client_metadata_document_and_openapi() {
    let mut w = World::new().await;
    let res = w
        .app
        .call(
            Role::Connectors,
            TestRequest::get().uri("/mcp/client-metadata.json"),
        )
        .await;
    assert_eq!(res.status, 200);
    let doc = res.json();
    assert_eq!(
        doc["client_id"],
        "http://connectors.test/mcp/client-metadata.json"
    );
    assert_eq!(doc["redirect_uris"], json!([CALLBACK]));
    assert_eq!(doc["token_endpoint_auth_method"], "none");

    let res = w
        .app
        .call(Role::Connectors, TestRequest::get().uri("/openapi.json"))
        .await;
    let doc = res.json();
    for path in [
        "/api/mcp-servers/{id}/authorize",
        "/api/mcp-servers/callback",
        "/api/mcp-servers/complete",
        "/mcp/client-metadata.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

#[actix_web::test]
async fn cli_oauth_against_the_sdk_example() {
    use std::io::{BufRead, BufReader};
    let sdk = SdkOAuthServer::start();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .env("APP_ENV", "test")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "mcp",
            "call",
            &sdk.url(),
            "greet",
            r#"{"name":"cli"}"#,
            "--oauth",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the CLI prints the URL to open");
        if line.starts_with("http") {
            break Url::parse(&line).unwrap();
        }
    };
    let redirect = query(&url, "redirect_uri").unwrap();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    assert_eq!(query(&url, "resource"), Some(sdk.url()));
    // The "browser": the authorization server redirects to the CLI's loopback listener.
    let back = follow(&url).await;
    assert!(back.as_str().starts_with(&redirect));
    let page = reqwest::get(back).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["content"][0]["text"], "Hello, cli!");
}

#[actix_web::test]
async fn key_rotation_reseals_mcp_secrets_and_the_old_key_can_go() {
    use switchboard::platform::secret::Secret;
    const NEW_KEY: &str = "another-32-byte-key-for-tests!!!";
    let standin = OAuthStandIn::start(Behaviour::default()).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Authorized before the rotation (dynamic registration: a sealed client secret) ...
    let code = grant_code(&mut w, &ada, &id).await;
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    // ... and a second authorization started, not finished: its verifier is sealed too.
    let _pending = authorize_url(&mut w, &ada, &id).await;
    assert!(dump(&w).contains("\"client_secret\":\"v1:"));

    let old = (*w.app.platform.config).clone();
    let old_key = old.connectors.encryption_key.expose().to_owned();
    let mut rotated = old.clone();
    rotated.connectors.encryption_key = Secret::new(NEW_KEY);
    rotated.connectors.encryption_key_version = 2;
    rotated.connectors.previous_encryption_keys = vec![Secret::new(format!("1:{old_key}"))];
    let report = switchboard::connectors::admin::run(&rotated, 1).unwrap();
    let counts = |table: &str, column: &str| {
        let c = report.column(table, column).unwrap();
        (c.scanned, c.resealed)
    };
    assert_eq!(counts("mcp_credentials", "access_token"), (1, 1));
    assert_eq!(counts("mcp_credentials", "refresh_token"), (1, 1));
    // The finished flow and the open one.
    assert_eq!(counts("mcp_auth_flows", "code_verifier"), (2, 2));
    assert_eq!(counts("mcp_oauth_clients", "client_secret"), (1, 1));
    assert_eq!(report.failed, 0);
    let printed = report.to_string();
    assert!(
        printed.contains("mcp_oauth_clients.client_secret: scanned 1, re-sealed 1"),
        "{printed}"
    );
    // No value anywhere is still under the old key, and none is in plaintext.
    let rows = dump(&w);
    assert!(!rows.contains("\"v1:"), "a value is left under key 1");
    assert!(rows.contains("\"refresh_token\":\"v2:"));
    for secret in ["mcpat_", "mcprt_", "mcpsecret_1"] {
        assert!(
            !rows.contains(secret),
            "{secret} is in a table in plaintext"
        );
    }
    assert_eq!(
        switchboard::connectors::admin::run(&rotated, 10)
            .unwrap()
            .resealed(),
        0,
        "a second rotation has nothing to do"
    );

    // A process that holds only the new key: the server still calls tools ...
    let mut only_new = rotated.clone();
    only_new.connectors.previous_encryption_keys = Vec::new();
    w.app.restart_with(only_new);
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["content"][0]["text"], "whoami with read");
    // ... and an hour later its refresh token refreshes (sent with the client secret, which
    // the stand-in checks: both opened under the new key).
    let (grants, before) = {
        let seen = standin.seen.lock().unwrap();
        (
            seen.token_grants.len(),
            seen.bearers.last().cloned().unwrap(),
        )
    };
    w.app.clock.advance(chrono::Duration::seconds(3600));
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    {
        let seen = standin.seen.lock().unwrap();
        assert_eq!(seen.token_grants.len(), grants + 1);
        let g = seen.token_grants.last().unwrap();
        assert_eq!(g["grant_type"], "refresh_token");
        assert_eq!(g["client_secret"], "mcpsecret_1");
        assert_ne!(
            seen.bearers.last().unwrap(),
            &before,
            "the refreshed token was used"
        );
    }
    let rows = dump(&w);
    assert!(!rows.contains("\"v1:"), "the refresh wrote under key 2");
    assert!(!rows.contains("mcpat_") && !rows.contains("mcprt_"));
}

/// Runs every ready connectors job, as a worker of another process would.
async fn drain_jobs(w: &World) -> usize {
    let platform = &w.app.platform;
    switchboard::jobs::Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        w.another_process().job_registry(),
    )
    .run_until_idle()
    .await
    .unwrap()
}

#[actix_web::test]
async fn the_refresh_sweep_job_deletes_expired_mcp_authorization_flows() {
    let standin = OAuthStandIn::start(Behaviour::default()).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let flows = |w: &World| w.sql_texts("SELECT state_hash AS t FROM mcp_auth_flows ORDER BY t");
    // One flow finished, one abandoned.
    let code = grant_code(&mut w, &ada, &id).await;
    assert_eq!(complete(&mut w, &ada, &code).await.status, 200);
    let abandoned = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(flows(&w).len(), 2);

    // Expired, but kept for a day so a late or replayed callback gets a clear answer.
    let ttl = i64::try_from(w.app.platform.config.connectors.oauth_flow_ttl_secs).unwrap();
    w.app.clock.advance(chrono::Duration::seconds(ttl + 60));
    assert!(w.another_process().schedule_sweep().await.unwrap());
    assert_eq!(drain_jobs(&w).await, 1);
    assert_eq!(flows(&w).len(), 2);
    let state = query(&abandoned, "state").unwrap();
    let late = callback(
        &mut w,
        &Url::parse(&format!("{CALLBACK}?code=x&state={state}")).unwrap(),
    )
    .await;
    let location = Url::parse(late.header("location").unwrap()).unwrap();
    assert_eq!(query(&location, "error").as_deref(), Some("state_expired"));

    // A day later the queued sweep deletes both; a flow started since stays.
    w.app.clock.advance(chrono::Duration::days(1));
    let _fresh = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(flows(&w).len(), 3);
    assert_eq!(drain_jobs(&w).await, 1, "the sweep chain ran again");
    let left = flows(&w);
    assert_eq!(left.len(), 1, "only the fresh flow is left");
}

#[actix_web::test]
async fn a_client_pre_registered_in_config_comes_first_and_nothing_is_registered() {
    use switchboard::platform::config::McpClientRegistration;
    use switchboard::platform::secret::Secret;
    // The authorization server also offers Client ID Metadata Documents (our URL is https) and
    // dynamic registration: the pre-registered client must win over both.
    let metadata = "https://connectors.test/mcp/client-metadata.json";
    let standin = OAuthStandIn::start(Behaviour {
        cimd_client: Some(metadata.to_owned()),
        preregistered: Some(("prereg-1".to_owned(), "prereg_secret_1".to_owned())),
        ..Behaviour::default()
    })
    .await;
    let mut w = World::with_env(&[("CONNECTORS_URL", "https://connectors.test")]).await;
    // `[[connectors.mcp.clients]]` for the stand-in's issuer (an array of tables: set on the
    // loaded configuration, as a TOML file would).
    let mut config = (*w.app.platform.config).clone();
    config.connectors.mcp.clients.push(McpClientRegistration {
        issuer: format!("{}/as", standin.server.uri()),
        client_id: "prereg-1".to_owned(),
        client_secret: Some(Secret::new("prereg_secret_1")),
        // The stand-in reads client credentials from the form only.
        token_endpoint_auth_method: Some("client_secret_post".to_owned()),
    });
    config
        .validate(&[Role::Connectors])
        .expect("the registration is valid configuration");
    w.app.restart_with(config);
    let ada = w.user("ada");
    let id = add_ok(&mut w, &ada, &standin.url()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let url = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(query(&url, "client_id").as_deref(), Some("prereg-1"));
    let back = follow(&url).await;
    let res = callback(&mut w, &back).await;
    let code = w.authorized_code(&res);
    let res = complete(&mut w, &ada, &code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));

    // The refresh uses the same client, its secret from config.
    w.app.clock.advance(chrono::Duration::seconds(3600));
    let res = call(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    {
        let seen = standin.seen.lock().unwrap();
        assert_eq!(seen.registrations, 0, "no dynamic registration");
        let kinds: Vec<(&str, &str, &str)> = seen
            .token_grants
            .iter()
            .map(|g| {
                (
                    g["grant_type"].as_str(),
                    g["client_id"].as_str(),
                    g["client_secret"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("authorization_code", "prereg-1", "prereg_secret_1"),
                ("refresh_token", "prereg-1", "prereg_secret_1"),
            ]
        );
    }
    // Nothing kept per issuer, and the configured secret is in no table.
    assert_eq!(
        w.sql_texts("SELECT issuer AS t FROM mcp_oauth_clients")
            .len(),
        0
    );
    assert!(!dump(&w).contains("prereg_secret_1"));
}
