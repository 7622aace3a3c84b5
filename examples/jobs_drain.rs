//! Bench helper (not shipped): fills the job queue with trivial jobs, or drains them with one
//! runner, as one process of `switchboard` would. Used by bench/webhooks.sh.
//!
//!   jobs_drain fill <N>                  # N `bench_noop` jobs, queued now
//!   jobs_drain drain <concurrency>       # run them until none is left; prints jobs/s
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench helper: a failure should stop it with the reason"
)]

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard::db::build_pool;
use switchboard::jobs::{Registry, Runner};
use switchboard::platform::clock::SystemClock;
use switchboard::platform::config::{DatabaseConfig, JobsConfig};
use switchboard::platform::secret::Secret;

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn left(conn: &mut PgConnection) -> i64 {
    diesel::sql_query("SELECT count(*) AS n FROM jobs WHERE kind = 'bench_noop'")
        .get_result::<N>(conn)
        .unwrap()
        .n
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut args = std::env::args().skip(1);
    let mode = args.next().expect("fill|drain");
    let n: usize = args.next().expect("a number").parse().unwrap();
    let mut conn = PgConnection::establish(&url).unwrap();
    if mode == "fill" {
        diesel::sql_query(
            "INSERT INTO jobs (kind, payload, max_attempts, run_at, created_at, updated_at) \
             SELECT 'bench_noop', jsonb_build_object('n', i), 5, now(), now(), now() \
             FROM generate_series(1, $1) AS i",
        )
        .bind::<BigInt, _>(n as i64)
        .execute(&mut conn)
        .unwrap();
        println!("queued {n} bench_noop jobs");
        return;
    }
    let pool_size: u32 = std::env::var("POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let pool = build_pool(&DatabaseConfig {
        url: Secret::new(url),
        pool_max_size: pool_size,
        connect_timeout_secs: 5,
        migrate_on_start: false,
        create_if_missing: false,
    });
    let ran = Arc::new(AtomicU64::new(0));
    let mut registry = Registry::new();
    let counter = ran.clone();
    registry.register("bench_noop", move |_job| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let config = JobsConfig {
        enabled: true,
        poll_interval_ms: 50,
        lease_secs: 60,
        max_attempts: 5,
        backoff_base_ms: 1000,
        backoff_max_secs: 60,
        default_concurrency: n,
        concurrency: HashMap::new(),
        shutdown_grace_secs: 5,
        pool_max_size: 0,
    };
    let start = Instant::now();
    let handle = Runner::new(pool, Arc::new(SystemClock), config, registry).start();
    while left(&mut conn) > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    handle.shutdown().await;
    let ran = ran.load(Ordering::Relaxed);
    println!(
        "ran {ran} jobs in {:.2} s: {:.0} jobs/s (concurrency {n}, pool {pool_size})",
        took.as_secs_f64(),
        ran as f64 / took.as_secs_f64()
    );
}
