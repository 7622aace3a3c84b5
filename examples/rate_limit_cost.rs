//! Bench helper (not shipped): the cost of one rate-limit check with database storage against
//! memory storage, as the middleware runs it (the store's decision through the pool and the
//! blocking pool), one client after another and then 8 at a time. Used by
//! bench/rate-limit-cost.sh, which gives it a migrated database in `DATABASE_URL`.
//! (Moved here from an ignored test in tests/it/scale.rs: a measurement, not a test.)
#![expect(
    clippy::expect_used,
    reason = "a bench helper: a failure should stop it with the reason"
)]

use switchboard::auth::rate_limit::{DatabaseStore, MemoryStore, RateLimitStore, Rule};
use switchboard::db::build_pool;
use switchboard::platform::config::DatabaseConfig;
use switchboard::platform::secret::Secret;

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let n: usize = std::env::var("CHECKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let pool = build_pool(&DatabaseConfig {
        url: Secret::new(url),
        pool_max_size: 8,
        connect_timeout_secs: 5,
        migrate_on_start: false,
        create_if_missing: false,
    });
    let database = DatabaseStore::new(pool, 60_000);
    let memory = MemoryStore::new(100_000);
    let rule = Rule::new(10, 1_000_000);
    for (name, store) in [
        ("memory", &memory as &dyn RateLimitStore),
        ("database", &database),
    ] {
        for parallel in [1usize, 8] {
            let started = std::time::Instant::now();
            for round in 0..n / parallel {
                let keys: Vec<String> = (0..parallel)
                    .map(|i| format!("10.0.{i}.{}|/ok", round % 50))
                    .collect();
                futures_util::future::join_all(keys.iter().map(|k| store.hit(k, rule, 0))).await;
            }
            let took = started.elapsed();
            println!(
                "{name:>8}, {parallel} at a time: {:>7.1} µs per check, {:>6.0} checks/s",
                took.as_secs_f64() * 1e6 / n as f64,
                n as f64 / took.as_secs_f64()
            );
        }
    }
}
