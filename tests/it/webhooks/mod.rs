//! Provider webhooks on the connectors role: signatures (computed here with ring), timestamps,
//! caps, dedupe, rotation; routing to 0, 1 and 2 connections; `OAuthApp revoked`; retention.
//! Split by flow: here the helpers the flows share (also used by `events` and the Linear agent
//! tests); `intake` (signatures, timestamps, caps, dedupe, rotation); `routing` (deliveries to
//! connections, revocation, retention, the operators' view); `group_commit` (the intake
//! writers' batches); `route_batches` (one routing job per batch, failures mid-chunk).

mod group_commit;
mod intake;
mod route_batches;
mod routing;

pub use crate::common::jobs::drain;
use crate::common::{Seen, TestDb};
use crate::connectors::World;
use actix_web::test::TestRequest;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};
use switchboard::platform::clock::Clock;
use switchboard::platform::role::Role;

pub const LINEAR_SECRET: &str = "lin_wh_test_secret_current";
pub const GITHUB_SECRET: &str = "gh_wh_test_secret_current";

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

pub fn secrets_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LINEAR_WEBHOOK_SECRET", LINEAR_SECRET),
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
    ]
}

pub async fn world(extra: &[(&str, &str)]) -> World {
    let mut env = secrets_env();
    env.extend_from_slice(extra);
    World::with_env(&env).await
}

/// A Linear envelope stamped with the world's clock.
pub fn linear_body(w: &World, kind: &str, action: &str, org: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": action,
        "type": kind,
        "organizationId": org,
        "createdAt": "2026-11-27T10:00:00.000Z",
        "data": { "id": "issue-1", "title": "Fix the thing" },
        "url": "https://linear.app/acme/issue/ACME-1",
        "webhookId": "wh-1",
        "webhookTimestamp": w.app.clock.now().timestamp_millis(),
    }))
    .unwrap()
}

pub fn linear_request(body: &[u8], signature: Option<&str>, delivery: &str) -> TestRequest {
    let mut req = TestRequest::post()
        .uri("/webhooks/linear")
        .insert_header(("content-type", "application/json; charset=utf-8"))
        .insert_header(("linear-delivery", delivery))
        .insert_header(("linear-event", "Issue"))
        .set_payload(body.to_vec());
    if let Some(sig) = signature {
        req = req.insert_header(("linear-signature", sig));
    }
    req
}

pub async fn post_linear(w: &mut World, body: &[u8], delivery: &str) -> Seen {
    let sig = hmac_hex(LINEAR_SECRET, body);
    w.app
        .call(Role::Connectors, linear_request(body, Some(&sig), delivery))
        .await
}

fn github_request(
    body: &[u8],
    signature: Option<String>,
    delivery: &str,
    event: Option<&str>,
) -> TestRequest {
    let mut req = TestRequest::post()
        .uri("/webhooks/github")
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-github-delivery", delivery))
        .set_payload(body.to_vec());
    if let Some(sig) = signature {
        req = req.insert_header(("x-hub-signature-256", sig));
    }
    if let Some(event) = event {
        req = req.insert_header(("x-github-event", event));
    }
    req
}

pub async fn post_github(w: &mut World, payload: &Value, delivery: &str, event: &str) -> Seen {
    let body = serde_json::to_vec(payload).unwrap();
    let sig = format!("sha256={}", hmac_hex(GITHUB_SECRET, &body));
    w.app
        .call(
            Role::Connectors,
            github_request(&body, Some(sig), delivery, Some(event)),
        )
        .await
}

/// Inserts a connection row directly (routing reads only ids and status).
pub fn connection(
    w: &World,
    id: &str,
    owner: &str,
    provider: &str,
    account: &str,
    org: Option<&str>,
) {
    let mut conn = w.app.db.conn();
    diesel::sql_query(
        "INSERT INTO connections (id, owner_id, provider, external_account_id, external_org_id, \
         display_name, access_token, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $1, 'v1:sealed', now(), now())",
    )
    .bind::<Text, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(provider)
    .bind::<Text, _>(account)
    .bind::<diesel::sql_types::Nullable<Text>, _>(org)
    .execute(&mut conn)
    .unwrap();
}

pub fn count(db: &TestDb, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(&mut db.conn())
        .unwrap()
        .n
}

fn stored(w: &World) -> (i64, i64) {
    (
        count(&w.app.db, "SELECT count(*) AS n FROM webhook_events"),
        count(&w.app.db, "SELECT count(*) AS n FROM jobs"),
    )
}

fn event_status(w: &World, delivery: &str) -> String {
    w.sql_texts(&format!(
        "SELECT status || ':' || matched AS t FROM webhook_events WHERE delivery_id = '{delivery}'"
    ))[0]
        .clone()
}

fn fed(w: &World, delivery: &str) -> Vec<String> {
    w.sql_texts(&format!(
        "SELECT ce.connection_id || '@' || ce.owner_id AS t FROM connection_events ce \
         JOIN webhook_events we ON we.id = ce.event_id WHERE we.delivery_id = '{delivery}' ORDER BY ce.connection_id"
    ))
}
