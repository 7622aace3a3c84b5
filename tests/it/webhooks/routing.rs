//! Routing: deliveries reach 0, 1 or 2 connections (Linear by organization, GitHub by
//! installation, owner, sender); `OAuthApp revoked`; retention; the operators' unmatched list.

use super::*;

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
    crate::common::jobs::enqueue(&w, "events_prune");
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
