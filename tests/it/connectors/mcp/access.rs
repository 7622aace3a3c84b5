//! Who reaches what: another user's server is not found, bearer tokens are sealed, the SSRF
//! guard, and a catalog entry that reuses the provider connection's token.

use super::*;

#[actix_web::test]
async fn another_users_server_is_not_found() {
    let modern = Modern::start(None).await;
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let id = add_id(&mut w, &ada, &modern.url()).await;
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
    call_ok(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 2 })).await;

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
    call_ok(&mut w, &ada, &id, "add", json!({ "a": 1, "b": 1 })).await;

    let res = add(&mut w, &ada, json!({ "provider": "nope" })).await;
    assert_eq!(res.status, 400);
    let res = add(&mut w, &ada, json!({ "provider": "linear" })).await;
    assert_eq!(res.status, 409);
    assert_eq!(res.json()["code"], "MCP_SERVER_EXISTS");
}
