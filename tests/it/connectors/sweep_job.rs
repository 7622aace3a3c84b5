//! The token-refresh sweep as a `refresh_sweep` job: one queued or running across processes,
//! re-queued on its interval, and refreshing what is due.

use super::World;
use crate::common::jobs::drain;
use crate::common::stand_in::Provider;
use chrono::Duration;

fn count(w: &World, sql: &str) -> i64 {
    crate::common::rows::count(&mut w.app.db.conn(), sql)
}

#[actix_web::test]
async fn two_processes_scheduling_at_once_make_one_waiting_sweep() {
    let w = World::new().await;
    let (a, b) = (w.another_process(), w.another_process());
    let (x, y) = tokio::join!(a.schedule_sweep(), b.schedule_sweep());
    let added = [x.unwrap(), y.unwrap()];
    assert_eq!(added.iter().filter(|added| **added).count(), 1, "{added:?}");
    assert_eq!(count(&w, "jobs WHERE kind = 'refresh_sweep'"), 1);
    // Still one while it waits.
    assert!(!a.schedule_sweep().await.unwrap());
    assert_eq!(count(&w, "jobs WHERE kind = 'refresh_sweep'"), 1);

    // It runs once, and the run queues the next one for its interval, not before.
    assert_eq!(drain(&w).await, 1);
    assert_eq!(
        count(
            &w,
            "jobs WHERE kind = 'refresh_sweep' AND state = 'queued' AND attempts = 0"
        ),
        1
    );
    assert_eq!(drain(&w).await, 0, "the next sweep waits for its interval");
    assert!(!b.schedule_sweep().await.unwrap(), "the chain is alive");
    w.app.clock.advance(Duration::seconds(
        i64::try_from(w.app.platform.config.connectors.refresh.sweep_interval_secs * 2).unwrap(),
    ));
    assert_eq!(drain(&w).await, 1);
    assert_eq!(count(&w, "jobs WHERE kind = 'refresh_sweep'"), 1);
}

#[actix_web::test]
async fn the_sweep_job_refreshes_connections_nearing_expiry() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    w.connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    // 23 h 50 min: less than the 15-minute margin left of Linear's 24 h token.
    w.app
        .clock
        .advance(Duration::hours(23) + Duration::minutes(50));
    w.linear
        .linear_refresh("lin_r1", Provider::rotated("lin_a2", "lin_r2"))
        .await;
    assert!(w.another_process().schedule_sweep().await.unwrap());
    assert_eq!(drain(&w).await, 1);
    assert_eq!(
        w.linear
            .received("/oauth/token", "refresh_token=lin_r1")
            .await
            .len(),
        1
    );
    let id = switchboard::connectors::ConnectionId(
        w.sql_texts("SELECT id AS t FROM connections").remove(0),
    );
    assert_eq!(
        w.another_process()
            .access_token(&id)
            .await
            .unwrap()
            .expose(),
        "lin_a2",
        "the sweep stored the refreshed token"
    );
}
