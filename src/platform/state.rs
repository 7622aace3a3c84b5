//! What every request handler of either role may reach: configuration, the pool, the clock.

use crate::db::DbPool;
use crate::platform::clock::SharedClock;
use crate::platform::config::Config;
use futures_util::future::BoxFuture;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

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
    /// What a role asks to run at shutdown, after in-flight requests and before the job runners.
    pub on_shutdown: ShutdownHooks,
}

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// Steps run once at graceful shutdown, in the order they were added.
#[derive(Clone, Default)]
pub struct ShutdownHooks(Arc<Mutex<Vec<Hook>>>);

impl ShutdownHooks {
    pub fn add<F>(&self, hook: F)
    where
        F: FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    pub async fn run(&self) {
        let hooks: Vec<Hook> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for hook in hooks {
            hook().await;
        }
    }
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
            on_shutdown: ShutdownHooks::default(),
        }
    }
}
