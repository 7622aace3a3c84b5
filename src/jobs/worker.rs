//! The workers of one process: a loop that claims ready jobs per kind up to that kind's
//! concurrency, runs each under a renewed lease, and records the outcome. [`Supervisor`] keeps
//! the runners of a process so shutdown can stop them all.

use crate::db::{self, DbError, DbPool};
use crate::jobs::{Job, JobError, Registry, backoff, store, worker_id};
use crate::platform::clock::SharedClock;
use crate::platform::config::JobsConfig;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// What a runner needs; cheap to clone into each job's task.
#[derive(Clone)]
pub struct Runner {
    pool: DbPool,
    clock: SharedClock,
    config: JobsConfig,
    registry: Registry,
    worker: String,
    wake: Arc<Notify>,
    /// Set while started: finished jobs go to one task that deletes them in batches (one
    /// commit for many trivial jobs instead of one each).
    done: Option<mpsc::UnboundedSender<Job>>,
}

impl Runner {
    pub fn new(pool: DbPool, clock: SharedClock, config: JobsConfig, registry: Registry) -> Self {
        Self {
            pool,
            clock,
            config,
            registry,
            worker: worker_id(),
            wake: Arc::new(Notify::new()),
            done: None,
        }
    }

    /// Shares a wake-up with code that enqueues in this process (it calls `notify_one` after
    /// its commit), so a local job starts without waiting for the next poll.
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.config.lease_secs).unwrap_or(60))
    }

    /// Runs ready jobs one at a time until none is ready; returns how many ran. Reaps expired
    /// leases first. For tests and tools: no lease renewal, no concurrency.
    pub async fn run_until_idle(&self) -> Result<usize, DbError> {
        let mut ran = 0;
        self.reap().await?;
        loop {
            let mut any = false;
            for kind in self.registry.kinds() {
                for job in self.claim(&kind, 1).await? {
                    any = true;
                    ran += 1;
                    self.run_one(job).await;
                }
            }
            if !any {
                return Ok(ran);
            }
        }
    }

    async fn reap(&self) -> Result<usize, DbError> {
        let now = self.clock.now();
        db::run(&self.pool, move |conn| store::reap_expired(conn, now)).await
    }

    async fn claim(&self, kind: &str, limit: usize) -> Result<Vec<Job>, DbError> {
        let now = self.clock.now();
        let lease_until = now + self.lease();
        let kind = kind.to_owned();
        let worker = self.worker.clone();
        let limit = i64::try_from(limit).unwrap_or(1);
        db::run(&self.pool, move |conn| {
            store::claim(conn, now, &kind, limit, &worker, lease_until)
        })
        .await
    }

    /// Claims up to the given number of ready jobs of each kind, in one statement.
    async fn claim_kinds(&self, wanted: Vec<(String, usize)>) -> Result<Vec<Job>, DbError> {
        let now = self.clock.now();
        let lease_until = now + self.lease();
        let worker = self.worker.clone();
        db::run(&self.pool, move |conn| {
            let wanted: Vec<(&str, i64)> = wanted
                .iter()
                .map(|(k, n)| (k.as_str(), i64::try_from(*n).unwrap_or(1)))
                .collect();
            store::claim_kinds(conn, now, &wanted, &worker, lease_until)
        })
        .await
    }

    /// Runs one claimed job to its end: its handler under a lease renewed every third of the
    /// lease, a panic counted as a failure, then done / retry / dead.
    async fn run_one(&self, job: Job) {
        let Some(handler) = self.registry.handler(&job.kind) else {
            self.record(job, Err(JobError::permanent("no handler for this kind")))
                .await;
            return;
        };
        let run = AssertUnwindSafe(handler(job.clone())).catch_unwind();
        tokio::pin!(run);
        let renew_every = Duration::from_secs(self.config.lease_secs.max(3) / 3);
        let mut ticker = tokio::time::interval(renew_every);
        ticker.tick().await;
        let outcome = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = ticker.tick() => {
                    let now = self.clock.now();
                    let until = now + self.lease();
                    let held = job.clone();
                    let renewed = db::run(&self.pool, move |conn| store::extend(conn, now, &held, until)).await;
                    match renewed {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = job.id, kind = %job.kind, "lost the claim while running"),
                        Err(err) => tracing::warn!(job = job.id, kind = %job.kind, error = %err, "renewing the job's lease failed; retrying at the next tick"),
                    }
                }
            }
        };
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(JobError::retry("the handler panicked")),
        };
        self.record(job, result).await;
    }

    async fn record(&self, job: Job, result: Result<(), JobError>) {
        let now = self.clock.now();
        let id = job.id;
        let written = match result {
            Ok(()) => {
                // Handed to the batch completer; back here only when it has stopped.
                let job = match &self.done {
                    Some(done) => match done.send(job) {
                        Ok(()) => return,
                        Err(mpsc::error::SendError(job)) => job,
                    },
                    None => job,
                };
                db::run(&self.pool, move |conn| store::complete(conn, &job)).await
            }
            Err(err) => {
                let delay = backoff(
                    job.attempt,
                    Duration::from_millis(self.config.backoff_base_ms),
                    Duration::from_secs(self.config.backoff_max_secs),
                );
                let retry_at =
                    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                if err.permanent || job.attempt >= job.max_attempts {
                    tracing::warn!(job = job.id, kind = %job.kind, error = %err.message, "job is dead");
                } else {
                    tracing::info!(job = job.id, kind = %job.kind, error = %err.message, "job failed; will retry");
                }
                db::run(&self.pool, move |conn| {
                    store::fail(conn, now, &job, &err.message, retry_at, err.permanent)
                })
                .await
            }
        };
        if let Err(err) = written {
            // The claim stays until its lease runs out; then another worker takes it.
            tracing::warn!(job = id, error = %err, "could not record the job's outcome");
        }
    }

    /// Starts the loop on the current runtime.
    pub fn start(mut self) -> RunnerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let release_runner = self.clone();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        self.done = Some(done_tx);
        let completer = tokio::spawn(complete_batches(self.pool.clone(), done_rx));
        let task = tokio::spawn(async move {
            self.run_loop(stop_rx, completer).await;
        });
        RunnerHandle {
            stop: stop_tx,
            task: Mutex::new(Some(task)),
            runner: release_runner,
        }
    }

    async fn run_loop(
        mut self,
        mut stop: watch::Receiver<bool>,
        completer: tokio::task::JoinHandle<()>,
    ) {
        let kinds: Vec<(String, usize, Arc<Semaphore>)> = self
            .registry
            .kinds()
            .into_iter()
            .filter_map(|kind| {
                let n = self.config.concurrency_of(&kind);
                (n > 0).then(|| (kind, n, Arc::new(Semaphore::new(n))))
            })
            .collect();
        if kinds.is_empty() {
            self.done = None;
            let _ = completer.await;
            return;
        }
        tracing::info!(worker = %self.worker, kinds = ?kinds.iter().map(|k| (&k.0, k.1)).collect::<Vec<_>>(), "job workers started");
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        let mut running: JoinSet<()> = JoinSet::new();
        // One copy for every job task (a clone per job would copy the registry and config).
        let shared = Arc::new(self.clone());
        let mut last_reap = std::time::Instant::now() - Duration::from_secs(3600);
        // When each kind last tried to claim: a small claim waits at most one poll interval.
        let mut last_claim =
            vec![std::time::Instant::now() - Duration::from_secs(3600); kinds.len()];
        loop {
            if *stop.borrow() {
                break;
            }
            if last_reap.elapsed() >= poll {
                if let Err(err) = self.reap().await {
                    tracing::warn!(error = %err, "reaping expired job leases failed");
                }
                last_reap = std::time::Instant::now();
            }
            // A kind that got every job it asked for may have more queued: claim again at once.
            // One that got fewer had no other ready job a moment ago. A job queued since through
            // this process's wake-up wakes the loop; one queued otherwise (by another process,
            // by a job without the wake-up) or coming due is found by the poll or once a
            // running job ends, as it was after the empty claim this loop used to make.
            let mut more = false;
            // Every kind with room, in one claim.
            let mut wanted: Vec<(String, usize)> = Vec::new();
            for ((kind, capacity, permits), last_claim) in kinds.iter().zip(&mut last_claim) {
                let free = permits.available_permits();
                // While busy, claim in batches of at least a quarter of the capacity (one claim
                // per finished job would be one commit per job again), but never wait more than
                // one poll interval for that: long jobs (agent runs) may hold the other slots
                // for minutes, and a queued job must not wait for them.
                let small = free < *capacity && free < capacity.div_ceil(4);
                if free == 0 || (small && last_claim.elapsed() < poll) {
                    continue;
                }
                *last_claim = std::time::Instant::now();
                wanted.push((kind.clone(), free));
            }
            if !wanted.is_empty() {
                let asked = wanted.clone();
                match self.claim_kinds(wanted).await {
                    Ok(jobs) => {
                        more = asked
                            .iter()
                            .any(|(kind, n)| jobs.iter().filter(|j| j.kind == *kind).count() >= *n);
                        for job in jobs {
                            let Some((_, _, permits)) = kinds.iter().find(|k| k.0 == job.kind)
                            else {
                                continue;
                            };
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                continue;
                            };
                            let runner = shared.clone();
                            running.spawn(async move {
                                runner.run_one(job).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "claiming jobs failed"),
                }
            }
            while running.try_join_next().is_some() {}
            if more {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.wake.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        // Shutdown: no new claims; running jobs get the grace period, the rest are released.
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        // Record the finished ones before releasing, or they would be released and run again.
        drop(shared);
        self.done = None;
        let _ = completer.await;
        let now = self.clock.now();
        let worker = self.worker.clone();
        match db::run(&self.pool, move |conn| store::release(conn, now, &worker)).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released unfinished job claims"),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "releasing job claims failed; their leases will expire")
            }
        }
    }
}

/// Deletes finished jobs, as many per statement as have finished meanwhile.
async fn complete_batches(pool: DbPool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(err) = db::run(&pool, move |conn| store::complete_many(conn, &batch)).await {
            // Their claims stay until the leases run out; then they run again (at least once).
            tracing::warn!(error = %err, "recording finished jobs failed");
        }
    }
}

/// A started runner.
pub struct RunnerHandle {
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runner: Runner,
}

impl RunnerHandle {
    /// Stops claiming, lets running jobs finish within the grace period, releases the rest.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    pub fn worker(&self) -> &str {
        self.runner.worker()
    }
}

/// Writes out what a background writer holds; run by [`Supervisor::flush`] and at shutdown.
pub type Flusher =
    Box<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static>;

/// The runners of one process, so shutdown reaches them all, and the background writers to
/// flush once they have stopped (jobs may still have written to them).
#[derive(Clone, Default)]
pub struct Supervisor {
    runners: Arc<Mutex<Vec<Arc<RunnerHandle>>>>,
    flushers: Arc<Mutex<Vec<Arc<Flusher>>>>,
}

impl Supervisor {
    pub fn add(&self, handle: RunnerHandle) -> Arc<RunnerHandle> {
        let handle = Arc::new(handle);
        self.runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle.clone());
        handle
    }

    /// Registers a background writer's flush (e.g. the MCP call records).
    pub fn on_flush(
        &self,
        f: impl Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        self.flushers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(Box::new(f)));
    }

    /// Waits until every registered background writer has written what it held.
    pub async fn flush(&self) {
        let flushers: Vec<_> = self
            .flushers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for f in flushers {
            f().await;
        }
    }

    pub async fn shutdown(&self) {
        let runners: Vec<_> = self
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for runner in runners {
            runner.shutdown().await;
        }
        self.flush().await;
    }
}
