//! The whole authorization flow against the SDK's OAuth example server, through the API and
//! through `switchboard mcp`.

use super::*;

#[actix_web::test]
async fn sdk_example_full_flow_with_registration_and_owner_binding() {
    let sdk = SdkOAuthServer::start();
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let server = add_ok(&mut w, &ada, json!({ "url": sdk.url() })).await;
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
    let res = complete_ok(&mut w, &ada, &code).await;
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
    let res = call_ok(&mut w, &ada, &id, "greet", json!({ "name": "Ada" })).await;
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
