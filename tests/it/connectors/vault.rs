//! The token vault: no plaintext token in any table or log after every flow, and key rotation.

use super::{APP_ORIGIN, World, query};
use crate::common::logs;
use crate::common::stand_in::Provider;
use crate::common::test_config;
use actix_web::test::TestRequest;
use chrono::Duration;
use serde_json::json;
use std::sync::Arc;
use switchboard::connectors::{ConnectionId, ConnectorsState};
use switchboard::platform::state::Platform;
use wiremock::ResponseTemplate;

#[actix_web::test]
async fn no_plaintext_token_code_or_verifier_in_any_table_or_log() {
    let logs = logs::capture();
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");

    // Connect, refresh with rotation, a refresh that fails, a failed callback, a delete.
    let id = w
        .connect_linear(
            &ada,
            "code_plain_1",
            "lin_access_plain_1",
            "lin_refresh_plain_1",
            "v1",
            "o1",
        )
        .await;
    let gone = w
        .connect_linear(
            &bob,
            "code_plain_2",
            "lin_access_plain_2",
            "lin_refresh_plain_2",
            "v2",
            "o2",
        )
        .await;
    w.app
        .clock
        .advance(Duration::hours(23) + Duration::minutes(50));
    w.linear
        .linear_refresh(
            "lin_refresh_plain_1",
            Provider::rotated("lin_access_plain_3", "lin_refresh_plain_3"),
        )
        .await;
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/connections/{id}/refresh")),
        )
        .await;
    assert_eq!(res.status, 200);
    w.linear
        .linear_refresh(
            "lin_refresh_plain_2",
            ResponseTemplate::new(400).set_body_json(json!({ "error": "invalid_grant" })),
        )
        .await;
    let res = w
        .send(
            &bob,
            TestRequest::post().uri(&format!("/api/connections/{gone}/refresh")),
        )
        .await;
    assert_eq!(res.status, 409);
    let url = w
        .authorize(
            &ada,
            "linear",
            json!({ "redirect_to": format!("{APP_ORIGIN}/x") }),
        )
        .await;
    let pending_state = query(&url, "state").unwrap();
    let res = w
        .callback(
            "linear",
            &format!("code=code_plain_3&state={pending_state}"),
        )
        .await;
    assert_eq!(res.status, 302);
    w.linear.linear_revoke(200).await;
    let res = w
        .send(
            &bob,
            TestRequest::delete().uri(&format!("/api/connections/{gone}")),
        )
        .await;
    assert_eq!(res.status, 200);
    // One flow left waiting, with its verifier sealed.
    let _ = w.authorize(&ada, "linear", json!({})).await;

    let verifiers: Vec<String> = w
        .linear
        .received("/oauth/token", "code_verifier=")
        .await
        .iter()
        .filter_map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "code_verifier")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(verifiers.len(), 3);
    let mut secrets: Vec<String> = [
        "lin_access_plain_1",
        "lin_refresh_plain_1",
        "lin_access_plain_2",
        "lin_refresh_plain_2",
        "lin_access_plain_3",
        "lin_refresh_plain_3",
        "code_plain_1",
        "code_plain_2",
        "code_plain_3",
        &pending_state,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    secrets.extend(verifiers);
    // The one-time codes the callbacks handed out are stored only as hashes.
    assert_eq!(w.grant_codes.len(), 2);
    secrets.extend(w.grant_codes.clone());

    // Every table, every row, as JSON text.
    let tables = w.sql_texts(
        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert!(
        tables.contains(&"connections".to_owned()) && tables.contains(&"oauth_flows".to_owned())
    );
    let mut dump = String::new();
    for table in &tables {
        for row in w.sql_texts(&format!(
            "SELECT row_to_json(x)::text AS t FROM \"{table}\" x"
        )) {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    assert!(
        dump.contains("\"access_token\":\"v1:"),
        "the dump has the sealed rows"
    );
    let text = logs.text();
    assert!(text.contains("account connected"), "logs were captured");
    assert!(
        text.contains("code=[redacted]"),
        "the callback target was logged, redacted"
    );
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "{secret} found in a table");
        assert!(
            !text.contains(secret.as_str()),
            "{secret} found in the logs"
        );
    }
}

#[actix_web::test]
async fn rotate_encryption_reseals_every_value_under_the_new_key() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    let _pending = w.authorize(&ada, "linear", json!({})).await;
    // A finished authorization whose code was not redeemed yet: its grant is sealed too.
    w.linear.linear_code("c2", "lin_a2", "lin_r2").await;
    w.linear.linear_viewer("lin_a2", "v2", "o2", "Beta").await;
    let url = w
        .authorize(
            &ada,
            "linear",
            json!({ "redirect_to": format!("{APP_ORIGIN}/x") }),
        )
        .await;
    let state = query(&url, "state").unwrap();
    let res = w
        .callback("linear", &format!("code=c2&state={state}"))
        .await;
    let _grant = w.authorized_code(&res);
    let before = w.sql_texts("SELECT access_token AS t FROM connections");
    assert!(before[0].starts_with("v1:"));

    let new_key = "another-32-byte-key-for-tests!!!";
    let old_key = "dev-only-encryption-key-32bytes!";
    let previous = format!("1:{old_key}");
    let rotated = test_config(&[
        ("DATABASE_URL", w.app.db.url()),
        ("AUTH_JWKS_URL", &w.minter.jwks_url()),
        ("ENCRYPTION_KEY", new_key),
        ("SWITCHBOARD__CONNECTORS__ENCRYPTION_KEY_VERSION", "2"),
        (
            "SWITCHBOARD__CONNECTORS__PREVIOUS_ENCRYPTION_KEYS",
            &previous,
        ),
    ]);
    rotated
        .validate(&[switchboard::platform::role::Role::Connectors])
        .unwrap();
    let report = switchboard::connectors::admin::run(&rotated, 1).unwrap();
    let counts = |table: &str, column: &str| {
        let c = report.column(table, column).unwrap();
        (c.scanned, c.resealed)
    };
    assert_eq!(counts("connections", "access_token"), (1, 1));
    assert_eq!(counts("connections", "refresh_token"), (1, 1));
    // The connects' consumed flows and the pending one.
    assert_eq!(counts("oauth_flows", "code_verifier"), (3, 3));
    assert_eq!(counts("pending_grants", "payload"), (1, 1));
    assert_eq!(report.resealed(), 6);
    assert_eq!(report.failed, 0);
    let sealed = w.sql_texts(
        "SELECT access_token AS t FROM connections UNION ALL SELECT refresh_token FROM connections \
         UNION ALL SELECT code_verifier FROM oauth_flows UNION ALL SELECT payload FROM pending_grants",
    );
    assert!(sealed.iter().all(|s| s.starts_with("v2:")), "{sealed:?}");
    // Idempotent.
    assert_eq!(
        switchboard::connectors::admin::run(&rotated, 10)
            .unwrap()
            .resealed(),
        0
    );

    // A process holding only the new key reads everything.
    let only_new = test_config(&[
        ("DATABASE_URL", w.app.db.url()),
        ("AUTH_JWKS_URL", &w.minter.jwks_url()),
        ("ENCRYPTION_KEY", new_key),
        ("SWITCHBOARD__CONNECTORS__ENCRYPTION_KEY_VERSION", "2"),
    ]);
    let platform = Platform::new(
        Arc::new(only_new),
        w.app.platform.pool.clone(),
        w.app.clock.clone(),
    );
    let state = ConnectorsState::new(&platform).unwrap();
    assert_eq!(
        state
            .access_token(&ConnectionId(id.clone()))
            .await
            .unwrap()
            .expose(),
        "lin_a1"
    );
    // The old key alone no longer opens them (its process gets an error, not a 500 body leak).
    let old_only = w.another_process();
    assert!(old_only.access_token(&ConnectionId(id)).await.is_err());
}

#[test]
fn malformed_previous_keys_are_reported_without_their_value() {
    let config = test_config(&[(
        "SWITCHBOARD__CONNECTORS__PREVIOUS_ENCRYPTION_KEYS",
        "1:short-secret-value,x:another-32-byte-key-for-tests!!!",
    )]);
    let err = config
        .validate(&[switchboard::platform::role::Role::Connectors])
        .unwrap_err()
        .to_string();
    assert!(err.contains("previous_encryption_keys entry 1"), "{err}");
    assert!(err.contains("previous_encryption_keys entry 2"), "{err}");
    assert!(!err.contains("short-secret-value"), "{err}");
}
