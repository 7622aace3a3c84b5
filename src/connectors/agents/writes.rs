//! A run's writes that overlap its tools and model calls: each runs on a task of its own,
//! after the writes it follows, and the loop waits for them only before something that must
//! come after them (see `run`).

use crate::connectors::Ctx;
use crate::db;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::sync::{Arc, Mutex, PoisonError};

/// A write running on its own task, awaitable from more than one place.
pub(super) type Write = Shared<BoxFuture<'static, Result<(), String>>>;

/// The writes of one claim of a run still in flight.
pub(super) struct Writes {
    ctx: Arc<Ctx>,
    run: String,
    pending: Mutex<Vec<Write>>,
    /// The first write to fail, set by its own task (a write nobody awaits yet is not polled,
    /// so its future cannot tell).
    failed: Arc<Mutex<Option<String>>>,
}

impl Writes {
    pub(super) fn new(ctx: Arc<Ctx>, run: String) -> Self {
        Self {
            ctx,
            run,
            pending: Mutex::new(Vec::new()),
            failed: Arc::default(),
        }
    }

    /// The writes in flight now, as one future (they go on without it): every one is awaited,
    /// even past a failure, so none lands after what follows; the first failure is the result.
    pub(super) fn settling(&self) -> BoxFuture<'static, Result<(), String>> {
        let writes = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        async move {
            let mut first = Ok(());
            for w in writes {
                if let Err(e) = w.await
                    && first.is_ok()
                {
                    first = Err(e);
                }
            }
            first
        }
        .boxed()
    }

    /// Waits for the writes in flight.
    pub(super) async fn settle(&self) -> Result<(), String> {
        self.settling().await?;
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }

    /// Everything in flight now, as one write a later one can follow.
    pub(super) fn barrier(&self) -> Write {
        self.settling().shared()
    }

    /// The first write that failed so far, without waiting for the others.
    pub(super) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `write` on a task of its own once `after` has succeeded (the task takes no
    /// connection before), and adds it to the writes in flight; `events` when it adds events
    /// (the run's SSE readers are woken).
    pub(super) fn spawn<F>(&self, events: bool, after: Option<Write>, write: F)
    where
        F: FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<()> + Send + 'static,
    {
        let (ctx, run, failed) = (self.ctx.clone(), self.run.clone(), self.failed.clone());
        let task = tokio::spawn(async move {
            if let Some(after) = after {
                after.await?;
            }
            if let Err(e) = db::query_in_place(&ctx.jobs_pool, write).await {
                let e = e.to_string();
                failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| e.clone());
                return Err(e);
            }
            if events {
                ctx.agent_events.nudge(&run);
            }
            Ok(())
        });
        let write: Write = async move { task.await.map_err(|e| e.to_string())? }
            .boxed()
            .shared();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Writes done are dropped (a failed one stays, for the settle to report).
        pending.retain(|w| !matches!(w.peek(), Some(Ok(()))));
        pending.push(write);
    }
}
