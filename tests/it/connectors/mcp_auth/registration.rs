//! How our client is known to an authorization server: a pre-registered client first, then a
//! Client ID Metadata Document, then dynamic registration; the metadata document we serve.

use super::*;

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
    let id = add_id(&mut w, &ada, &standin.url()).await;
    let url = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(query(&url, "client_id").as_deref(), Some(metadata));
    assert_eq!(
        query(&url, "redirect_uri").as_deref(),
        Some("https://connectors.test/api/mcp-servers/callback")
    );
    let code = code_from(&mut w, &url).await;
    complete_ok(&mut w, &ada, &code).await;
    call_ok(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(standin.seen.lock().unwrap().registrations, 0);
    assert_eq!(
        w.sql_texts("SELECT issuer AS t FROM mcp_oauth_clients")
            .len(),
        0
    );

    // Over plain http the document cannot be fetched by anyone: dynamic registration instead.
    let (mut w, ada, id) = ada_with_server(&standin.url()).await;
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
async fn a_client_pre_registered_in_config_comes_first_and_nothing_is_registered() {
    use switchboard::connectors::config::McpClientRegistration;
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
    let id = add_id(&mut w, &ada, &standin.url()).await;

    let url = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(query(&url, "client_id").as_deref(), Some("prereg-1"));
    let code = code_from(&mut w, &url).await;
    complete_ok(&mut w, &ada, &code).await;
    call_ok(&mut w, &ada, &id, "whoami", json!({})).await;

    // The refresh uses the same client, its secret from config.
    w.app.clock.advance(chrono::Duration::seconds(3600));
    call_ok(&mut w, &ada, &id, "whoami", json!({})).await;
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
