//! What every request handler of either role may reach: configuration, the pool, the clock.

use crate::db::DbPool;
use crate::platform::clock::SharedClock;
use crate::platform::config::Config;
use std::sync::Arc;

#[derive(Clone)]
pub struct Platform {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub clock: SharedClock,
    /// The job runners started in this process, so shutdown reaches them.
    pub jobs: crate::jobs::Supervisor,
}

impl Platform {
    pub fn new(config: Arc<Config>, pool: DbPool, clock: SharedClock) -> Self {
        Self {
            config,
            pool,
            clock,
            jobs: crate::jobs::Supervisor::default(),
        }
    }
}
