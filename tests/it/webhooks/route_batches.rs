//! Routing in batches: one job per intake batch, each run routing every pending delivery.

use super::*;
use crate::common::jobs::runner;
use switchboard::connectors::webhooks::writer::{self, Delivery};

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
    let runner = runner(&w);
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
