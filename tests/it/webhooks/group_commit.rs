//! Group commit (`webhooks.intake_writers`): many deliveries per statement, answered one by one.

use super::*;
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
