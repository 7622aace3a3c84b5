//! What every request handler of either role may reach: configuration, the pool, the clock.

use crate::db::DbPool;
use crate::platform::clock::SharedClock;
use crate::platform::config::Config;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Clone)]
pub struct Platform {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub clock: SharedClock,
    /// Whether the "forwarded request but no trusted proxy" warning was given (once per process).
    pub proxy_warned: Arc<AtomicBool>,
    /// The job runners started in this process, so shutdown reaches them.
    pub jobs: crate::jobs::Supervisor,
    /// Set at SIGTERM: `/readyz` answers 503 from then on (`server.drain_delay_secs`).
    pub draining: Arc<AtomicBool>,
}

impl Platform {
    pub fn new(config: Arc<Config>, pool: DbPool, clock: SharedClock) -> Self {
        Self {
            config,
            pool,
            clock,
            proxy_warned: Arc::new(AtomicBool::new(false)),
            jobs: crate::jobs::Supervisor::default(),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
}
