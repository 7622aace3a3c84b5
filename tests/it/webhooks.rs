//! Provider webhooks on the connectors role: signatures (computed here with ring), timestamps,
//! caps, dedupe, rotation; routing to 0, 1 and 2 connections; `OAuthApp revoked`; retention.

use crate::common::{Seen, TestDb};
use crate::connectors::World;
use actix_web::test::TestRequest;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};
use switchboard::jobs::Runner;
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

/// Runs every ready job the connectors role knows, as a worker of another process would.
pub async fn drain(w: &World) -> usize {
    let registry = w.another_process().job_registry();
    let platform = &w.app.platform;
    Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        registry,
    )
    .run_until_idle()
    .await
    .unwrap()
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

#[actix_web::test]
async fn a_signed_linear_delivery_is_stored_with_its_routing_job() {
    let mut w = world(&[]).await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    let res = post_linear(&mut w, &body, "d0b6f1d2-0000-4000-8000-000000000001").await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json(), json!({ "ok": true, "duplicate": false }));
    let rows = w.sql_texts(
        "SELECT provider || '|' || delivery_id || '|' || event_type || '|' || action || '|' || status || '|' || (payload->>'organizationId') AS t FROM webhook_events",
    );
    assert_eq!(
        rows,
        vec!["linear|d0b6f1d2-0000-4000-8000-000000000001|Issue|create|pending|org-1"]
    );
    // The batch's routing job (this delivery was a batch of one).
    let jobs = w
        .sql_texts("SELECT kind || '|' || state || '|' || (payload->>'deliveries') AS t FROM jobs");
    assert_eq!(jobs, vec!["webhook_route|queued|1"]);
}

#[actix_web::test]
async fn refused_linear_deliveries_store_nothing() {
    let mut w = world(&[("SWITCHBOARD__WEBHOOKS__BODY_LIMIT_BYTES", "4096")]).await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    let good = hmac_hex(LINEAR_SECRET, &body);
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'F').unwrap();
    tampered[pos] = b'G';

    let now = w.app.clock.now().timestamp_millis();
    let stamped = |ms: i64| {
        serde_json::to_vec(
            &json!({ "type": "Issue", "organizationId": "o", "webhookTimestamp": ms }),
        )
        .unwrap()
    };
    let stale = stamped(now - 61_000);
    let future = stamped(now + 61_000);
    let no_ts = serde_json::to_vec(&json!({ "type": "Issue", "organizationId": "o" })).unwrap();
    let malformed = b"{\"type\": \"Issue\", ".to_vec();
    // Valid JSON that PostgreSQL's jsonb cannot hold: a NUL escape, in a value and in a key.
    let nul_value = serde_json::to_vec(
        &json!({ "type": "Issue", "organizationId": "o", "webhookTimestamp": now, "data": { "title": "a\u{0}b" } }),
    )
    .unwrap();
    let nul_key = serde_json::to_vec(
        &json!({ "type": "Issue", "organizationId": "o", "webhookTimestamp": now, "da\u{0}ta": 1 }),
    )
    .unwrap();
    let mut big = json!({ "type": "Issue", "webhookTimestamp": now, "pad": "" });
    big["pad"] = json!("x".repeat(5000));
    let big = serde_json::to_vec(&big).unwrap();

    type Case<'a> = (&'a str, Vec<u8>, Option<String>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "tampered body",
            tampered,
            Some(good.clone()),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(hmac_hex("not-the-secret", &body)),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "missing signature",
            body.clone(),
            None,
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "not hex",
            body.clone(),
            Some("zz".repeat(32)),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "stale",
            stale.clone(),
            Some(hmac_hex(LINEAR_SECRET, &stale)),
            401,
            "STALE_WEBHOOK",
        ),
        (
            "future",
            future.clone(),
            Some(hmac_hex(LINEAR_SECRET, &future)),
            401,
            "STALE_WEBHOOK",
        ),
        (
            "no timestamp",
            no_ts.clone(),
            Some(hmac_hex(LINEAR_SECRET, &no_ts)),
            401,
            "STALE_WEBHOOK",
        ),
        (
            "malformed json",
            malformed.clone(),
            Some(hmac_hex(LINEAR_SECRET, &malformed)),
            400,
            "BAD_REQUEST",
        ),
        (
            "NUL in a value",
            nul_value.clone(),
            Some(hmac_hex(LINEAR_SECRET, &nul_value)),
            400,
            "BAD_REQUEST",
        ),
        (
            "NUL in a key",
            nul_key.clone(),
            Some(hmac_hex(LINEAR_SECRET, &nul_key)),
            400,
            "BAD_REQUEST",
        ),
        (
            "oversize",
            big.clone(),
            Some(hmac_hex(LINEAR_SECRET, &big)),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (name, body, sig, status, code) in cases {
        let res = w
            .app
            .call(
                Role::Connectors,
                linear_request(&body, sig.as_deref(), &format!("d-{name}")),
            )
            .await;
        assert_eq!(
            res.status,
            status,
            "{name}: {:?}",
            String::from_utf8_lossy(&res.body)
        );
        assert_eq!(res.json()["code"], code, "{name}");
        assert!(!String::from_utf8_lossy(&res.body).contains(LINEAR_SECRET));
    }
    // No delivery id after a valid signature: 400 too.
    let res = w
        .app
        .call(
            Role::Connectors,
            TestRequest::post()
                .uri("/webhooks/linear")
                .insert_header(("linear-signature", good.as_str()))
                .set_payload(body.clone()),
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(stored(&w), (0, 0), "nothing stored for any refusal");
    // The window is inclusive at 60 s.
    let edge = stamped(now - 60_000);
    let res = post_linear(&mut w, &edge, "d-edge").await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn the_same_delivery_twice_stores_one_row() {
    let mut w = world(&[]).await;
    let body = linear_body(&w, "Issue", "update", "org-1");
    assert_eq!(
        post_linear(&mut w, &body, "dup-1").await.json()["duplicate"],
        false
    );
    let again = post_linear(&mut w, &body, "dup-1").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(stored(&w), (1, 1));
}

#[actix_web::test]
async fn during_a_rotation_old_and_new_secrets_are_accepted() {
    let mut w = World::with_env(&[
        ("LINEAR_WEBHOOK_SECRET", "lin-new-secret"),
        (
            "SWITCHBOARD__WEBHOOKS__LINEAR_PREVIOUS_SECRETS",
            "lin-old-secret,lin-older-secret",
        ),
    ])
    .await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    for (i, secret) in ["lin-new-secret", "lin-old-secret", "lin-older-secret"]
        .iter()
        .enumerate()
    {
        let sig = hmac_hex(secret, &body);
        let res = w
            .app
            .call(
                Role::Connectors,
                linear_request(&body, Some(&sig), &format!("rot-{i}")),
            )
            .await;
        assert_eq!(res.status, 200, "{secret}");
    }
    let sig = hmac_hex("lin-retired-secret", &body);
    let res = w
        .app
        .call(Role::Connectors, linear_request(&body, Some(&sig), "rot-x"))
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(stored(&w).0, 3);
}

#[actix_web::test]
async fn without_a_configured_secret_every_delivery_is_refused() {
    let mut w = World::new().await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    let sig = hmac_hex("", &body);
    let res = w
        .app
        .call(
            Role::Connectors,
            linear_request(&body, Some(&sig), "nosecret"),
        )
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(stored(&w), (0, 0));
}

#[actix_web::test]
async fn github_deliveries_are_verified_the_same_way() {
    let mut w = world(&[]).await;
    let payload = json!({ "action": "opened", "sender": { "id": 42 } });
    let res = post_github(&mut w, &payload, "gh-1", "issues").await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(
        post_github(&mut w, &payload, "gh-1", "issues").await.json()["duplicate"],
        true
    );

    let body = serde_json::to_vec(&payload).unwrap();
    let bare = hmac_hex(GITHUB_SECRET, &body);
    type Case<'a> = (&'a str, Option<String>, Option<&'a str>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        (
            "no sha256= prefix",
            Some(bare.clone()),
            Some("issues"),
            &body,
            401,
        ),
        (
            "wrong secret",
            Some(format!("sha256={}", hmac_hex("nope", &body))),
            Some("issues"),
            &body,
            401,
        ),
        ("missing signature", None, Some("issues"), &body, 401),
        (
            "missing event",
            Some(format!("sha256={bare}")),
            None,
            &body,
            400,
        ),
        (
            "malformed",
            Some(format!("sha256={}", hmac_hex(GITHUB_SECRET, b"[1,"))),
            Some("issues"),
            b"[1,",
            400,
        ),
    ];
    for (name, sig, event, body, status) in cases {
        let res = w
            .app
            .call(
                Role::Connectors,
                github_request(body, sig, &format!("gh-{name}"), event),
            )
            .await;
        assert_eq!(res.status, status, "{name}");
    }
    assert_eq!(stored(&w), (1, 1));
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

#[actix_web::test]
async fn linear_events_route_to_zero_one_or_two_connections_by_organization() {
    let mut w = world(&[]).await;
    let alice = w.user("alice");
    let bob = w.user("bob");
    connection(
        &w,
        "conn_a1",
        &alice,
        "linear",
        "viewer-a",
        Some("org-shared"),
    );
    connection(
        &w,
        "conn_b1",
        &bob,
        "linear",
        "viewer-b",
        Some("org-shared"),
    );
    connection(&w, "conn_b2", &bob, "linear", "viewer-b2", Some("org-bob"));
    connection(&w, "conn_gh", &bob, "github", "org-nobody", None);

    for (delivery, org) in [
        ("two", "org-shared"),
        ("one", "org-bob"),
        ("none", "org-nobody"),
    ] {
        let body = linear_body(&w, "Issue", "create", org);
        assert_eq!(post_linear(&mut w, &body, delivery).await.status, 200);
    }
    // Three batches of one: the first run routes all three and absorbs the other two jobs.
    assert_eq!(drain(&w).await, 1);
    assert_eq!(event_status(&w, "two"), "routed:2");
    assert_eq!(fed(&w, "two"), vec!["conn_a1@alice", "conn_b1@bob"]);
    assert_eq!(event_status(&w, "one"), "routed:1");
    assert_eq!(fed(&w, "one"), vec!["conn_b2@bob"]);
    assert_eq!(
        event_status(&w, "none"),
        "unmatched:0",
        "unmatched deliveries are kept and marked"
    );
    assert!(fed(&w, "none").is_empty());
    assert_eq!(
        count(&w.app.db, "SELECT count(*) AS n FROM jobs"),
        0,
        "routing jobs finished"
    );
    assert_eq!(drain(&w).await, 0);
}

#[actix_web::test]
async fn oauth_app_revoked_marks_the_matching_connections_revoked() {
    let mut w = world(&[]).await;
    let alice = w.user("alice");
    connection(&w, "conn_a", &alice, "linear", "viewer-a", Some("org-1"));
    connection(&w, "conn_b", &alice, "linear", "viewer-b", Some("org-1"));
    connection(&w, "conn_c", &alice, "linear", "viewer-c", Some("org-2"));
    let body = serde_json::to_vec(&json!({
        "type": "OAuthApp", "action": "revoked", "oauthClientId": "client-1",
        "organizationId": "org-1", "webhookTimestamp": w.app.clock.now().timestamp_millis(),
    }))
    .unwrap();
    assert_eq!(post_linear(&mut w, &body, "revoke-1").await.status, 200);
    drain(&w).await;
    let statuses = w.sql_texts("SELECT id || ':' || status AS t FROM connections ORDER BY id");
    assert_eq!(
        statuses,
        vec!["conn_a:revoked", "conn_b:revoked", "conn_c:active"]
    );
    assert_eq!(
        fed(&w, "revoke-1"),
        vec!["conn_a@alice", "conn_b@alice"],
        "owners see the revocation"
    );
    // The API shows it too.
    let res = w
        .send("alice", TestRequest::get().uri("/api/connections/conn_a"))
        .await;
    assert_eq!(res.json()["status"], "revoked");
}

#[actix_web::test]
async fn github_events_route_by_installation_account_then_owner_then_sender() {
    let mut w = world(&[]).await;
    let alice = w.user("alice");
    let bob = w.user("bob");
    connection(&w, "conn_org", &alice, "github", "1000", None);
    connection(&w, "conn_bob", &bob, "github", "2000", None);
    let installation =
        json!({ "installation": { "account": { "id": 1000 } }, "sender": { "id": 2000 } });
    let owner = json!({ "repository": { "owner": { "id": 1000 } }, "sender": { "id": 2000 } });
    let sender_only =
        json!({ "repository": { "owner": { "id": 9999 } }, "sender": { "id": 2000 } });
    let nobody = json!({ "sender": { "id": 3000 } });
    for (d, p) in [
        ("inst", &installation),
        ("owner", &owner),
        ("sender", &sender_only),
        ("nobody", &nobody),
    ] {
        assert_eq!(post_github(&mut w, p, d, "push").await.status, 200);
    }
    drain(&w).await;
    assert_eq!(fed(&w, "inst"), vec!["conn_org@alice"]);
    assert_eq!(fed(&w, "owner"), vec!["conn_org@alice"]);
    assert_eq!(fed(&w, "sender"), vec!["conn_bob@bob"]);
    assert_eq!(event_status(&w, "nobody"), "unmatched:0");
}

#[actix_web::test]
async fn a_connection_made_through_oauth_receives_its_workspaces_events() {
    let mut w = world(&[]).await;
    w.user("carol");
    let id = w
        .connect_linear("carol", "code-1", "acc-1", "ref-1", "viewer-c", "org-carol")
        .await;
    let body = linear_body(&w, "Comment", "create", "org-carol");
    assert_eq!(post_linear(&mut w, &body, "e2e-1").await.status, 200);
    drain(&w).await;
    assert_eq!(fed(&w, "e2e-1"), vec![format!("{id}@carol")]);
}

#[actix_web::test]
async fn events_past_retention_are_pruned_by_the_prune_job() {
    let mut w = world(&[("SWITCHBOARD__WEBHOOKS__EVENT_RETENTION_DAYS", "7")]).await;
    let alice = w.user("alice");
    connection(&w, "conn_a", &alice, "linear", "v", Some("org-1"));
    let body = linear_body(&w, "Issue", "create", "org-1");
    post_linear(&mut w, &body, "old").await;
    w.app.clock.advance(chrono::Duration::days(6));
    let body = linear_body(&w, "Issue", "create", "org-1");
    post_linear(&mut w, &body, "young").await;
    drain(&w).await;
    w.app.clock.advance(chrono::Duration::days(2));
    {
        let mut conn = w.app.db.conn();
        switchboard::jobs::enqueue(
            &mut conn,
            w.app.clock.now(),
            "events_prune",
            &json!({}),
            &Default::default(),
        )
        .unwrap();
    }
    assert_eq!(drain(&w).await, 1);
    assert_eq!(
        w.sql_texts("SELECT delivery_id AS t FROM webhook_events"),
        vec!["young"]
    );
    assert_eq!(
        count(&w.app.db, "SELECT count(*) AS n FROM connection_events"),
        1
    );
}

#[actix_web::test]
async fn the_webhook_and_events_endpoints_are_in_the_openapi_document() {
    let mut w = world(&[]).await;
    let doc = w.app.get(Role::Connectors, "/openapi.json").await.json();
    for path in [
        "/webhooks/linear",
        "/webhooks/github",
        "/api/events",
        "/api/events/stream",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

#[actix_web::test]
async fn operators_list_unmatched_deliveries_with_the_ids_routing_looked_for() {
    let mut w = world(&[]).await;
    let body = linear_body(&w, "Issue", "create", "org-unknown");
    post_linear(&mut w, &body, "lost-1").await;
    post_github(&mut w, &json!({ "sender": { "id": 77 } }), "lost-2", "push").await;
    drain(&w).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .env("APP_ENV", "test")
        .env("DATABASE_URL", w.app.db.url())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["webhooks", "unmatched"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("delivery=lost-1  org=org-unknown"), "{text}");
    assert!(
        text.contains("delivery=lost-2  installation=- owner=- sender=77"),
        "{text}"
    );
    assert!(text.contains("2 unmatched delivery(ies)"), "{text}");
}

// Group commit (`webhooks.intake_writers`): many deliveries per statement, answered one by one.

use switchboard::connectors::webhooks::writer::{self, Delivery, IntakeWriter, WriterConfig};

fn delivery(id: &str) -> Delivery {
    Delivery {
        provider: "linear",
        delivery: id.to_owned(),
        event_type: "Issue".to_owned(),
        action: Some("update".to_owned()),
        payload: actix_web::web::BytesMut::from(
            &br#"{"type":"Issue","organizationId":"org-1"}"#[..],
        ),
    }
}

fn refuse_on_insert(w: &World, condition: &str) {
    let mut conn = w.app.db.conn();
    diesel::sql_query(format!(
        "CREATE FUNCTION refuse_delivery() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF {condition} THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
    ))
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER refuse_delivery BEFORE INSERT ON webhook_events FOR EACH ROW \
         EXECUTE FUNCTION refuse_delivery()",
    )
    .execute(&mut conn)
    .unwrap();
}

#[actix_web::test]
async fn one_batch_stores_each_new_delivery_once_with_its_job() {
    let w = world(&[]).await;
    let mut conn = w.app.db.conn();
    let now = w.app.clock_now();
    assert_eq!(
        writer::store_batch(&mut conn, &[delivery("seen-before")], now, 5).unwrap(),
        vec![true]
    );
    let batch = [
        delivery("a"),
        delivery("seen-before"),
        delivery("b"),
        delivery("a"),
    ];
    assert_eq!(
        writer::store_batch(&mut conn, &batch, now, 5).unwrap(),
        vec![true, false, true, false]
    );
    // One routing job per batch that stored something, not one per delivery.
    assert_eq!(stored(&w), (3, 2));
    assert_eq!(
        w.sql_texts("SELECT kind || ':' || (payload->>'deliveries') AS t FROM jobs ORDER BY id"),
        vec!["webhook_route:1", "webhook_route:2"]
    );
    // A batch of nothing but duplicates queues no job.
    assert_eq!(
        writer::store_batch(&mut conn, &[delivery("a"), delivery("b")], now, 5).unwrap(),
        vec![false, false]
    );
    assert_eq!(stored(&w), (3, 2));
}

/// The writer's first batch waits on a table lock while the next deliveries queue: they are
/// then written as one batch, in which one delivery is refused by PostgreSQL. Only that one
/// fails (503 territory); the rest of its batch, including a copy inside the batch, are
/// answered stored / duplicate.
#[actix_web::test]
async fn a_refused_delivery_fails_alone_and_copies_inside_a_batch_are_duplicates() {
    let w = world(&[]).await;
    refuse_on_insert(&w, "NEW.delivery_id = 'poison'");
    let platform = &w.app.platform;
    let pool = switchboard::db::build_pool(&switchboard::platform::config::DatabaseConfig {
        pool_max_size: 1,
        ..platform.config.database.clone()
    });
    let intake = std::sync::Arc::new(
        IntakeWriter::start(
            pool,
            platform.clock.clone(),
            std::sync::Arc::new(tokio::sync::Notify::new()),
            &WriterConfig {
                writers: 1,
                batch_max: 256,
                batch_max_bytes: 1 << 20,
                max_attempts: 5,
            },
        )
        .unwrap(),
    );
    let mut lock = w.app.db.conn();
    diesel::sql_query("BEGIN").execute(&mut lock).unwrap();
    diesel::sql_query("LOCK TABLE webhook_events IN EXCLUSIVE MODE")
        .execute(&mut lock)
        .unwrap();
    let submit = |id: &str| {
        let intake = intake.clone();
        let d = delivery(id);
        tokio::spawn(async move { intake.submit(d).await.map_err(|e| e.to_string()) })
    };
    let first = submit("first");
    // Until the writer's statement is waiting on the lock (a condition, not a time).
    while count(
        &w.app.db,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query LIKE '%webhook_events%'",
    ) == 0
    {
        tokio::task::yield_now().await;
    }
    let rest: Vec<_> = ["ok-1", "poison", "ok-2", "ok-1"]
        .into_iter()
        .map(submit)
        .collect();
    for _ in 0..20 {
        tokio::task::yield_now().await; // every submit has queued its delivery
    }
    diesel::sql_query("COMMIT").execute(&mut lock).unwrap();
    assert_eq!(first.await.unwrap(), Ok(true));
    let mut answers = Vec::new();
    for handle in rest {
        answers.push(handle.await.unwrap());
    }
    assert_eq!(answers[0], Ok(true));
    assert!(
        answers[1]
            .as_ref()
            .is_err_and(|e| e.contains("refused by the test")),
        "{answers:?}"
    );
    assert_eq!(answers[2], Ok(true));
    assert_eq!(answers[3], Ok(false));
    assert_eq!(
        w.sql_texts("SELECT delivery_id AS t FROM webhook_events ORDER BY 1"),
        vec!["first", "ok-1", "ok-2"]
    );
    assert_eq!(stored(&w), (3, 3));
    intake.shutdown().await;
    // After shutdown nothing is accepted (the provider retries elsewhere).
    assert!(intake.submit(delivery("late")).await.is_err());
}

#[actix_web::test]
async fn a_delivery_that_cannot_be_stored_is_a_503_with_nothing_stored() {
    let mut w = world(&[]).await;
    refuse_on_insert(&w, "true");
    let bodies: Vec<Vec<u8>> = (0..6)
        .map(|_| linear_body(&w, "Issue", "update", "org-1"))
        .collect();
    let reqs = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let sig = hmac_hex(LINEAR_SECRET, body);
            linear_request(body, Some(&sig), &format!("fails-{i}"))
        })
        .collect();
    let seen = w.app.call_concurrently(Role::Connectors, reqs).await;
    for res in &seen {
        assert_eq!(res.status, 503, "{:?}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.json()["code"], "SERVICE_UNAVAILABLE");
        // PostgreSQL's words stay in the log.
        assert!(!String::from_utf8_lossy(&res.body).contains("refused by the test"));
    }
    assert_eq!(stored(&w), (0, 0));
}

#[actix_web::test]
async fn concurrent_copies_of_one_delivery_store_one_row() {
    let mut w = world(&[]).await;
    let body = linear_body(&w, "Issue", "update", "org-1");
    let sig = hmac_hex(LINEAR_SECRET, &body);
    let reqs = (0..8)
        .map(|i| linear_request(&body, Some(&sig), if i % 2 == 0 { "same" } else { "other" }))
        .collect();
    let seen = w.app.call_concurrently(Role::Connectors, reqs).await;
    assert!(seen.iter().all(|r| r.status == 200));
    let fresh = seen
        .iter()
        .filter(|r| r.json()["duplicate"] == false)
        .count();
    assert_eq!(fresh, 2);
    // One or two batches, depending on how the requests met the writers.
    let (events, jobs) = stored(&w);
    assert_eq!(events, 2);
    assert!((1..=2).contains(&jobs), "{jobs} routing jobs");
}

// Routing in batches: one job per intake batch, each run routing every pending delivery.

fn linear_delivery(id: &str, kind: &str, action: &str, org: &str) -> Delivery {
    Delivery {
        provider: "linear",
        delivery: id.to_owned(),
        event_type: kind.to_owned(),
        action: Some(action.to_owned()),
        payload: actix_web::web::BytesMut::from(
            json!({ "type": kind, "action": action, "organizationId": org })
                .to_string()
                .as_bytes(),
        ),
    }
}

fn store(w: &World, batch: &[Delivery]) -> Vec<bool> {
    writer::store_batch(&mut w.app.db.conn(), batch, w.app.clock_now(), 5).unwrap()
}

/// A runner of another process, owned (so it can run in a task of its own).
fn route_runner(w: &World) -> Runner {
    let platform = &w.app.platform;
    Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        w.another_process().job_registry(),
    )
}

/// The feed in cursor order: `delivery>connection`.
fn feed_in_cursor_order(w: &World) -> Vec<String> {
    w.sql_texts(
        "SELECT we.delivery_id || '>' || ce.connection_id AS t FROM connection_events ce \
         JOIN webhook_events we ON we.id = ce.event_id ORDER BY ce.cursor",
    )
}

#[actix_web::test]
async fn one_route_job_routes_a_whole_batch_in_delivery_order() {
    let w = world(&[]).await;
    let alice = w.user("alice");
    let bob = w.user("bob");
    connection(&w, "conn_a1", &alice, "linear", "va", Some("org-shared"));
    connection(&w, "conn_b1", &bob, "linear", "vb", Some("org-shared"));
    connection(&w, "conn_b2", &bob, "linear", "vb2", Some("org-bob"));
    let batch = [
        linear_delivery("a-two", "Issue", "create", "org-shared"),
        linear_delivery("b-one", "Issue", "create", "org-bob"),
        linear_delivery("c-none", "Issue", "create", "org-nobody"),
        // Routed like one by one, in id order (a batch is inserted by delivery id): the
        // revocation reaches its connection, and the delivery after it no longer does.
        linear_delivery("d-revoke", "OAuthApp", "revoked", "org-bob"),
        linear_delivery("e-after", "Issue", "update", "org-bob"),
    ];
    assert_eq!(store(&w, &batch), vec![true; 5]);
    assert_eq!(stored(&w), (5, 1), "one routing job for the batch");
    assert_eq!(drain(&w).await, 1, "one run routed all five");
    assert_eq!(event_status(&w, "a-two"), "routed:2");
    assert_eq!(event_status(&w, "b-one"), "routed:1");
    assert_eq!(event_status(&w, "c-none"), "unmatched:0");
    assert_eq!(event_status(&w, "d-revoke"), "routed:1");
    assert_eq!(event_status(&w, "e-after"), "unmatched:0");
    assert_eq!(
        w.sql_texts("SELECT id || ':' || status AS t FROM connections ORDER BY id"),
        vec!["conn_a1:active", "conn_b1:active", "conn_b2:revoked"]
    );
    // Cursors follow the deliveries' order (then the connections' age).
    assert_eq!(
        feed_in_cursor_order(&w),
        vec![
            "a-two>conn_a1",
            "a-two>conn_b1",
            "b-one>conn_b2",
            "d-revoke>conn_b2"
        ]
    );
    assert_eq!(stored(&w), (5, 0));
}

/// A run that fails mid-chunk (PostgreSQL refuses its update of the events, after the feed rows
/// were inserted) leaves nothing behind: the chunk is pending again and the job retries. A
/// worker killed while it holds a chunk (its connection dropped inside the transaction) loses
/// nothing either: other runs skip the locked deliveries, and the dead run's job is claimed
/// again after its lease and routes them. Each delivery is in the feed exactly once.
#[actix_web::test]
async fn a_route_run_that_fails_or_dies_mid_chunk_routes_each_delivery_once_later() {
    let w = world(&[]).await;
    let alice = w.user("alice");
    connection(&w, "conn_a", &alice, "linear", "va", Some("org-1"));
    diesel::connection::SimpleConnection::batch_execute(
        &mut w.app.db.conn(),
        "CREATE TABLE refuse_routing (on_ boolean); INSERT INTO refuse_routing VALUES (true); \
         CREATE FUNCTION refuse_routing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF (SELECT on_ FROM refuse_routing) THEN RAISE EXCEPTION 'routing refused by the test'; \
         END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_routing BEFORE UPDATE ON webhook_events FOR EACH ROW \
         EXECUTE FUNCTION refuse_routing()",
    )
    .unwrap();
    let first: Vec<Delivery> = (0..3)
        .map(|i| linear_delivery(&format!("f{i}"), "Issue", "update", "org-1"))
        .collect();
    store(&w, &first);
    assert_eq!(drain(&w).await, 1);
    assert!(
        feed_in_cursor_order(&w).is_empty(),
        "the failed chunk rolled back"
    );
    assert_eq!(
        w.sql_texts("SELECT DISTINCT status AS t FROM webhook_events"),
        vec!["pending"]
    );
    let job = w.sql_texts("SELECT state || ':' || attempts || ':' || last_error AS t FROM jobs");
    assert_eq!(job.len(), 1);
    assert!(
        job[0].starts_with("queued:1:") && job[0].contains("routing refused by the test"),
        "{job:?}"
    );
    w.exec("UPDATE refuse_routing SET on_ = false");
    w.app.clock.advance(chrono::Duration::hours(2)); // past the retry's backoff
    assert_eq!(drain(&w).await, 1);
    assert_eq!(
        feed_in_cursor_order(&w),
        vec!["f0>conn_a", "f1>conn_a", "f2>conn_a"]
    );

    // Now a worker dies holding a chunk.
    let second: Vec<Delivery> = (0..3)
        .map(|i| linear_delivery(&format!("s{i}"), "Issue", "update", "org-1"))
        .collect();
    store(&w, &second);
    let lease = w.app.platform.config.jobs.lease_secs;
    let now = w.app.clock_now();
    let claimed = switchboard::jobs::store::claim(
        &mut w.app.db.conn(),
        now,
        "webhook_route",
        1,
        "w_killed",
        now + chrono::Duration::seconds(i64::try_from(lease).unwrap()),
    )
    .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut killed = w.app.db.conn();
    diesel::sql_query("BEGIN").execute(&mut killed).unwrap();
    diesel::sql_query("SELECT id FROM webhook_events WHERE status = 'pending' FOR UPDATE")
        .execute(&mut killed)
        .unwrap();
    // A batch landing meanwhile is routed by its own job, around the locked chunk.
    store(&w, &[linear_delivery("third", "Issue", "update", "org-1")]);
    assert_eq!(drain(&w).await, 1);
    assert_eq!(event_status(&w, "third"), "routed:1");
    assert_eq!(event_status(&w, "s0"), "pending:0");
    drop(killed); // the process dies: PostgreSQL rolls its transaction back
    assert_eq!(drain(&w).await, 0, "the lease still holds");
    w.app
        .clock
        .advance(chrono::Duration::seconds(i64::try_from(lease).unwrap() + 1));
    assert_eq!(drain(&w).await, 1, "the dead run's job is claimed again");
    for d in ["s0", "s1", "s2"] {
        assert_eq!(event_status(&w, d), "routed:1", "{d}");
    }
    assert_eq!(
        count(
            &w.app.db,
            "SELECT count(*) - count(DISTINCT event_id) AS n FROM connection_events"
        ),
        0,
        "no delivery is in the feed twice"
    );
    assert_eq!(
        count(&w.app.db, "SELECT count(*) AS n FROM connection_events"),
        7
    );
    assert_eq!(stored(&w), (7, 0));
}

/// A run that has already read its chunk must not be trusted with a batch that commits while
/// it works: that batch carries its own job and is routed.
#[actix_web::test]
async fn a_batch_that_lands_while_a_route_run_works_is_routed() {
    let w = world(&[]).await;
    let alice = w.user("alice");
    connection(&w, "conn_a", &alice, "linear", "va", Some("org-1"));
    store(&w, &[linear_delivery("early", "Issue", "update", "org-1")]);
    let mut lock = w.app.db.conn();
    diesel::sql_query("BEGIN").execute(&mut lock).unwrap();
    diesel::sql_query("LOCK TABLE connection_events IN EXCLUSIVE MODE")
        .execute(&mut lock)
        .unwrap();
    let runner = route_runner(&w);
    let run = tokio::spawn(async move { runner.run_until_idle().await.unwrap() });
    // Until the run has its chunk and waits to write the feed (a condition, not a time).
    while count(
        &w.app.db,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query LIKE '%connection_events%'",
    ) == 0
    {
        tokio::task::yield_now().await;
    }
    store(&w, &[linear_delivery("late", "Issue", "update", "org-1")]);
    diesel::sql_query("COMMIT").execute(&mut lock).unwrap();
    assert_eq!(run.await.unwrap(), 2, "the late batch's own job ran too");
    assert_eq!(event_status(&w, "early"), "routed:1");
    assert_eq!(event_status(&w, "late"), "routed:1");
    assert_eq!(
        feed_in_cursor_order(&w),
        vec!["early>conn_a", "late>conn_a"]
    );
    assert_eq!(stored(&w), (2, 0));
}

/// A backlog of batches is one run: the first run takes the waiting jobs' work (and the jobs).
#[actix_web::test]
async fn one_run_routes_a_backlog_of_batches_and_absorbs_their_jobs() {
    let w = world(&[]).await;
    let alice = w.user("alice");
    connection(&w, "conn_a", &alice, "linear", "va", Some("org-1"));
    for b in 0..4 {
        let batch: Vec<Delivery> = (0..3)
            .map(|i| linear_delivery(&format!("b{b}-{i}"), "Issue", "update", "org-1"))
            .collect();
        store(&w, &batch);
    }
    assert_eq!(stored(&w), (12, 4));
    assert_eq!(drain(&w).await, 1, "one run did it all");
    assert_eq!(stored(&w), (12, 0));
    assert_eq!(
        count(&w.app.db, "SELECT count(*) AS n FROM connection_events"),
        12
    );
    assert_eq!(
        w.sql_texts("SELECT DISTINCT status || ':' || matched AS t FROM webhook_events"),
        vec!["routed:1"]
    );
}
