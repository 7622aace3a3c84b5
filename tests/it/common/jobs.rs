//! The connectors role's job queue as a worker of another process sees it: queue a job, run
//! what is ready.

use crate::connectors::World;
use switchboard::jobs::Runner;
use switchboard::platform::clock::Clock;

/// A runner of another process, owned (so it can run in a task of its own).
pub fn runner(w: &World) -> Runner {
    let platform = &w.app.platform;
    Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        w.another_process().job_registry(),
    )
}

/// Runs every ready job the connectors role knows, as a worker of another process would.
pub async fn drain(w: &World) -> usize {
    runner(w).run_until_idle().await.unwrap()
}

/// Queues a `kind` job with an empty payload, due now.
pub fn enqueue(w: &World, kind: &str) {
    switchboard::jobs::enqueue(
        &mut w.app.db.conn(),
        w.app.clock.now(),
        kind,
        &serde_json::json!({}),
        &Default::default(),
    )
    .unwrap();
}
