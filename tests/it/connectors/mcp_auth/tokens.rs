//! After the grant: refresh and step-up against a stand-in, the issuer check, and the SSRF guard
//! on every URL discovery hands us.

use super::*;

#[actix_web::test]
async fn refresh_step_up_and_iss_against_a_stand_in() {
    let logs = crate::common::logs::capture();
    let standin = OAuthStandIn::start(Behaviour::default()).await;
    let (mut w, ada, id) = ada_with_server(&standin.url()).await;

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
    complete_ok(&mut w, &ada, &code).await;
    let res = call_ok(&mut w, &ada, &id, "whoami", json!({})).await;
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
    call_ok(&mut w, &ada, &id, "whoami", json!({})).await;
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
    let res = call_ok(&mut w, &ada, &id, "admin", json!({})).await;
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
        let id = add_id(&mut w, &ada, &standin.url()).await;
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
    let id = add_id(&mut w, &ada, &standin.url()).await;
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
