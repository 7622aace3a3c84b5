//! Built-in providers that are not configured: listed with the settings they lack, and
//! answered with an error naming those settings rather than looking missing.

use super::World;
use crate::common::auth::post;
use actix_web::test::TestRequest;
use serde_json::json;

#[actix_web::test]
async fn unconfigured_providers_are_listed_with_what_is_missing() {
    let mut w = World::with_env(&[
        ("LINEAR_CLIENT_ID", ""),
        ("LINEAR_CLIENT_SECRET", ""),
        (
            "SWITCHBOARD__CONNECTORS__PROVIDERS__GITHUB__CLIENT_SECRET",
            "",
        ),
    ])
    .await;
    let ada = w.user("ada");
    let res = w.send(&ada, TestRequest::get().uri("/api/providers")).await;
    assert_eq!(res.status, 200);
    let body = res.json();
    let providers = body["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2, "{body}");
    assert_eq!(providers[0]["id"], "linear");
    assert_eq!(providers[0]["configured"], false);
    assert_eq!(
        providers[0]["missing"],
        json!(["LINEAR_CLIENT_ID", "LINEAR_CLIENT_SECRET"])
    );
    assert_eq!(
        providers[0]["callback_url"],
        "http://connectors.test/api/connections/linear/callback"
    );
    assert_eq!(providers[1]["id"], "github");
    assert_eq!(providers[1]["configured"], false);
    assert_eq!(
        providers[1]["missing"],
        json!(["SWITCHBOARD__CONNECTORS__PROVIDERS__GITHUB__CLIENT_SECRET"])
    );
    // The client id that is set is not echoed anywhere.
    assert!(!res.body.windows(9).any(|w| w == b"gh-client"));

    let res = w
        .send(&ada, post("/api/connections/linear/authorize", json!({})))
        .await;
    assert_eq!(res.status, 409, "{}", String::from_utf8_lossy(&res.body));
    let err = res.json();
    assert_eq!(err["code"], "PROVIDER_NOT_CONFIGURED");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("LINEAR_CLIENT_ID") && message.contains("LINEAR_CLIENT_SECRET"),
        "{message}"
    );

    // A provider that is not built in is still unknown.
    let res = w
        .send(&ada, post("/api/connections/jira/authorize", json!({})))
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["code"], "PROVIDER_NOT_FOUND");
}

#[actix_web::test]
async fn configured_providers_say_so() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let body = w
        .send(&ada, TestRequest::get().uri("/api/providers"))
        .await
        .json();
    for p in body["providers"].as_array().unwrap() {
        assert_eq!(p["configured"], true, "{p}");
        assert_eq!(p["missing"], json!([]), "{p}");
    }
}
