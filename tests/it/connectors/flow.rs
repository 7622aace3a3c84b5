//! Connecting: authorize → provider → callback → token → identity → stored; bad input.

use super::{APP_ORIGIN, World, query};
use actix_web::test::TestRequest;
use base64::Engine;
use serde_json::json;
use switchboard::platform::role::Role;
use url::Url;
use wiremock::ResponseTemplate;
use wiremock::matchers::{method, path};

#[actix_web::test]
async fn the_full_linear_flow_stores_an_encrypted_connection() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    w.linear
        .linear_code("code-1", "lin_access_flow1", "lin_refresh_flow1")
        .await;
    w.linear
        .linear_viewer("lin_access_flow1", "viewer-1", "org-1", "Acme")
        .await;

    let url = w
        .authorize(
            &ada,
            "linear",
            json!({ "redirect_to": format!("{APP_ORIGIN}/settings?tab=x") }),
        )
        .await;
    assert!(
        url.as_str()
            .starts_with(&format!("{}/oauth/authorize?", w.linear.uri()))
    );
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&url, "client_id").as_deref(), Some("test-client-id"));
    assert_eq!(
        query(&url, "redirect_uri").as_deref(),
        Some("http://connectors.test/api/connections/linear/callback")
    );
    assert_eq!(query(&url, "scope").as_deref(), Some("read,write"));
    assert_eq!(query(&url, "actor").as_deref(), Some("user"));
    assert_eq!(query(&url, "prompt").as_deref(), Some("consent"));
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query(&url, "code_challenge").unwrap();
    let state = query(&url, "state").unwrap();
    assert!(state.len() >= 43);

    let res = w
        .callback("linear", &format!("code=code-1&state={state}"))
        .await;
    assert_eq!(res.status, 302, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let back = Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(back.origin().ascii_serialization(), APP_ORIGIN);
    assert_eq!(back.path(), "/settings");
    assert_eq!(query(&back, "tab").as_deref(), Some("x"));
    let grant = w.authorized_code(&res);
    // Nothing is connected until the owner redeems the code.
    let count = w.sql_texts("SELECT count(*)::text AS t FROM connections");
    assert_eq!(count, vec!["0"]);
    let done = w.complete(&ada, &grant).await;
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.header("cache-control"), Some("no-store"));
    assert_eq!(done.json()["status"], "connected");
    let id = done.json()["connection"]["id"].as_str().unwrap().to_owned();
    // Once.
    let again = w.complete(&ada, &grant).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["code"], "GRANT_NOT_FOUND");

    // The code exchange sent the PKCE verifier whose S256 is the challenge, and the secret.
    let exchanges = w
        .linear
        .received("/oauth/token", "grant_type=authorization_code")
        .await;
    assert_eq!(exchanges.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&exchanges[0].body)
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let verifier = field("code_verifier").unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
        challenge
    );
    assert_eq!(
        field("client_secret").as_deref(),
        Some("test-client-secret")
    );
    assert_eq!(
        field("redirect_uri").as_deref(),
        Some("http://connectors.test/api/connections/linear/callback")
    );

    let list = w
        .send(&ada, TestRequest::get().uri("/api/connections"))
        .await;
    assert_eq!(list.status, 200);
    let body = list.json();
    let conns = body["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c["id"], id);
    assert_eq!(c["provider"], "linear");
    assert_eq!(c["status"], "active");
    assert_eq!(c["display_name"], "Acme (acme)");
    assert_eq!(c["account_id"], "viewer-1");
    assert_eq!(c["organization_id"], "org-1");
    assert_eq!(c["account"]["actor"], "user");
    assert_eq!(c["scopes"], json!(["read", "write"]));
    assert!(c.get("access_token").is_none());
    assert!(!list.body.windows(8).any(|w| w == b"lin_acce"));

    let one = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/connections/{id}")),
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], id);

    // Stored sealed, under version 1.
    let sealed = w.sql_texts("SELECT access_token || ' ' || refresh_token AS t FROM connections");
    assert!(
        sealed[0].starts_with("v1:") && sealed[0].contains(" v1:"),
        "{sealed:?}"
    );
    assert!(!sealed[0].contains("lin_"));

    // The state is single-use: a replay is sent back with an error.
    let replay = w
        .callback("linear", &format!("code=code-1&state={state}"))
        .await;
    assert_eq!(replay.status, 302);
    let back = Url::parse(replay.header("location").unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("state_already_used"));
    assert_eq!(
        w.linear
            .received("/oauth/token", "grant_type=authorization_code")
            .await
            .len(),
        1
    );
}

#[actix_web::test]
async fn reconnecting_an_account_updates_it_and_another_workspace_adds_one() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let first = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "viewer-1", "org-1")
        .await;
    let again = w
        .connect_linear(&ada, "c2", "lin_a2", "lin_r2", "viewer-1", "org-1")
        .await;
    assert_eq!(first, again);
    let other = w
        .connect_linear(&ada, "c3", "lin_a3", "lin_r3", "viewer-2", "org-2")
        .await;
    assert_ne!(first, other);
    let list = w
        .send(&ada, TestRequest::get().uri("/api/connections"))
        .await
        .json();
    assert_eq!(list["connections"].as_array().unwrap().len(), 2);
    // The reconnect's tokens are the ones in use now.
    let state = w.another_process();
    let token = state
        .access_token(&switchboard::connectors::ConnectionId(first))
        .await
        .unwrap();
    assert_eq!(token.expose(), "lin_a2");
}

#[actix_web::test]
async fn an_expired_state_and_a_declined_consent_redirect_with_an_error() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let redirect = json!({ "redirect_to": format!("{APP_ORIGIN}/done") });

    let url = w.authorize(&ada, "linear", redirect.clone()).await;
    let state = query(&url, "state").unwrap();
    w.app.clock.advance(chrono::Duration::minutes(11));
    let res = w.callback("linear", &format!("code=x&state={state}")).await;
    assert_eq!(res.status, 302);
    let back = Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("state_expired"));
    assert!(query(&back, "status").is_none());

    let url = w.authorize(&ada, "linear", redirect.clone()).await;
    let state = query(&url, "state").unwrap();
    let res = w
        .callback(
            "linear",
            &format!("error=access_denied&error_description=no&state={state}"),
        )
        .await;
    let back = Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));

    // The provider refuses the code: an error on the redirect, never a 500.
    wiremock::Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "code expired"
        })))
        .mount(&w.linear.server)
        .await;
    let url = w.authorize(&ada, "linear", redirect).await;
    let state = query(&url, "state").unwrap();
    let res = w
        .callback("linear", &format!("code=bad&state={state}"))
        .await;
    let back = Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("provider_error"));

    // Without redirect_to the same failure is a JSON error.
    let url = w.authorize(&ada, "linear", json!({})).await;
    let state = query(&url, "state").unwrap();
    let res = w
        .callback("linear", &format!("code=bad&state={state}"))
        .await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["code"], "PROVIDER_ERROR");

    // An unknown state cannot be sent anywhere: JSON 400.
    let res = w.callback("linear", "code=x&state=never-issued").await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "INVALID_STATE");
    let res = w.callback("linear", "code=x").await;
    assert_eq!(res.status, 400);
    let res = w.callback("nope", "code=x&state=y").await;
    assert_eq!(res.status, 404);

    let count = w.sql_texts("SELECT count(*)::text AS t FROM connections");
    assert_eq!(count, vec!["0"]);
}

#[actix_web::test]
async fn authorize_refuses_bad_input_with_json_errors() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let post = |uri: &str| TestRequest::post().uri(uri);

    let res = w
        .send(
            &ada,
            post("/api/connections/nope/authorize").set_json(json!({})),
        )
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["code"], "PROVIDER_NOT_FOUND");

    let res = w
        .send(
            &ada,
            post("/api/connections/linear/authorize")
                .set_json(json!({ "redirect_to": "https://evil.test/steal" })),
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "INVALID_REDIRECT");

    let res = w
        .send(
            &ada,
            post("/api/connections/linear/authorize")
                .set_json(json!({ "redirect_to": "http://app.test.evil.test/x" })),
        )
        .await;
    assert_eq!(res.json()["code"], "INVALID_REDIRECT");

    let res = w
        .send(
            &ada,
            post("/api/connections/linear/authorize").set_json(json!({ "scopes": ["read write"] })),
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "VALIDATION_ERROR");

    let res = w
        .send(
            &ada,
            post("/api/connections/linear/authorize")
                .insert_header(("content-type", "application/json"))
                .set_payload("{not json"),
        )
        .await;
    assert_eq!(res.status, 400);

    // An empty body means the defaults; custom scopes are sent comma-separated.
    let res = w
        .send(&ada, post("/api/connections/linear/authorize"))
        .await;
    assert_eq!(res.status, 200);
    let url = w
        .authorize(
            &ada,
            "linear",
            json!({ "scopes": ["read", "issues:create"] }),
        )
        .await;
    assert_eq!(query(&url, "scope").as_deref(), Some("read,issues:create"));

    // No token, no flow.
    let res = w
        .app
        .call(Role::Connectors, post("/api/connections/linear/authorize"))
        .await;
    assert_eq!(res.status, 401);
}

#[actix_web::test]
async fn providers_are_listed_and_github_connects_through_the_same_registry() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let res = w.send(&ada, TestRequest::get().uri("/api/providers")).await;
    assert_eq!(res.status, 200);
    let body = res.json();
    let ids: Vec<&str> = body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["linear", "github"]);
    assert_eq!(
        body["providers"][1]["callback_url"],
        "http://connectors.test/api/connections/github/callback"
    );

    // GitHub: space-separated scopes, JSON token response with comma scopes, GET /user.
    wiremock::Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(wiremock::matchers::header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "gho_plaintext_1", "scope": "repo,read:user", "token_type": "bearer"
        })))
        .mount(&w.github.server)
        .await;
    wiremock::Mock::given(method("GET"))
        .and(path("/user"))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer gho_plaintext_1",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 4242, "login": "octo", "name": "Octo Cat", "email": null
        })))
        .mount(&w.github.server)
        .await;
    let url = w
        .authorize(&ada, "github", json!({ "scopes": ["repo", "read:user"] }))
        .await;
    assert_eq!(query(&url, "scope").as_deref(), Some("repo read:user"));
    assert!(query(&url, "actor").is_none());
    let state = query(&url, "state").unwrap();
    let res = w
        .callback("github", &format!("code=gh-code&state={state}"))
        .await;
    // Without redirect_to the callback answers the one-time code as JSON.
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["status"], "authorized");
    assert!(body["expires_at"].is_string());
    let grant = body["code"].as_str().unwrap().to_owned();
    let res = w.complete(&ada, &grant).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["status"], "connected");
    assert_eq!(body["connection"]["account_id"], "4242");
    assert_eq!(body["connection"]["display_name"], "octo");
    assert_eq!(body["connection"]["scopes"], json!(["repo", "read:user"]));
    assert_eq!(body["connection"]["expires_at"], serde_json::Value::Null);

    // A non-expiring token has nothing to refresh.
    let id = body["connection"]["id"].as_str().unwrap().to_owned();
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/connections/{id}/refresh")),
        )
        .await;
    assert_eq!(res.status, 400);

    // GitHub revokes with DELETE and Basic auth.
    wiremock::Mock::given(method("DELETE"))
        .and(path("/applications/gh-client/token"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&w.github.server)
        .await;
    let res = w
        .send(
            &ada,
            TestRequest::delete().uri(&format!("/api/connections/{id}")),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["revoked"], true);
}

#[actix_web::test]
async fn every_endpoint_is_in_the_openapi_document() {
    let mut w = World::new().await;
    let doc = w.app.get(Role::Connectors, "/openapi.json").await.json();
    for p in [
        "/api/providers",
        "/api/connections",
        "/api/connections/{id}",
        "/api/connections/{id}/refresh",
        "/api/connections/{provider}/authorize",
        "/api/connections/{provider}/callback",
        "/api/connections/complete",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    assert!(
        doc["paths"]["/api/connections/{id}"]
            .get("delete")
            .is_some()
    );
}
