//! Scale-out (issue 17): two auth instances on one database, as two processes behind a load
//! balancer would be. Each instance has its own platform (pool, memory) and they share only
//! PostgreSQL and the test's clock.
//! Split by flow: here the second instance and the waits on PostgreSQL's notices; `limits`
//! (rate limits across instances); `notices` (sign-outs and key rotations seen by the other
//! instance at once, a listener that reconnects); `processes` (real processes of the binary).

mod limits;
mod notices;
mod processes;

use crate::common::{Seen, TestApp};
use actix_web::test::{self, TestRequest};
use std::net::SocketAddr;
use switchboard::auth::rate_limit::{DatabaseStore, Decision, Rule};
use switchboard::db::build_pool;
use switchboard::platform::app::build_app;
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::platform::telemetry::RoleTag;
use switchboard::server::mount;

/// A second platform on `app`'s database and clock, with a pool and memory of its own.
fn second_instance(app: &TestApp) -> Platform {
    let config = app.platform.config.clone();
    let pool = build_pool(&config.database);
    Platform::new(config, pool, app.clock.clone())
}

/// Waits until `n` listener connections on the test database are listening (bounded: 10 s).
pub(crate) async fn listeners_ready(app: &TestApp, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sql = "pg_stat_activity WHERE datname = current_database() \
               AND application_name = 'switchboard-listen' AND state = 'idle' \
               AND query IN ('LISTEN \"switchboard_keys\"', 'SELECT 1')";
    let mut conn = app.db.conn();
    while crate::common::rows::count(&mut conn, sql) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} listeners not ready after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Asks until `check` holds (a notice travels through PostgreSQL on real time, not the test's
/// clock, which stays put); fails after 5 s.
async fn within_seconds<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
