//! The r2d2 pool of PostgreSQL connections and [`run`], the one way async code reaches it: every
//! query runs on the blocking pool, never on an async worker.

use crate::db::DbError;
use crate::platform::config::DatabaseConfig;
use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PoolError, PooledConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

type Manager = ConnectionManager<PgConnection>;

/// The pool, plus one permit per connection: [`run`] waits for a permit in async land (a fair,
/// first-come queue that costs no thread) before it takes a blocking thread and a connection,
/// so a burst queues in order instead of parking threads on the pool's condition variable,
/// which wakes them in no particular order and gives the slowest requests long tails.
#[derive(Clone)]
pub struct DbPool {
    inner: Pool<Manager>,
    permits: Arc<Semaphore>,
}

impl DbPool {
    /// A connection, blocking until one is free (for code already on a blocking thread).
    pub fn get(&self) -> Result<PooledConnection<Manager>, PoolError> {
        self.inner.get()
    }
}

/// Builds the pool without connecting: the process starts while the database is down and
/// `/readyz` says so, instead of refusing to start.
pub fn build_pool(config: &DatabaseConfig) -> DbPool {
    let inner = Pool::builder()
        .max_size(config.pool_max_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(config.connect_timeout_secs.max(1)))
        .test_on_check_out(false)
        .build_unchecked(Manager::new(config.url.expose()));
    DbPool {
        inner,
        permits: Arc::new(Semaphore::new(config.pool_max_size as usize)),
    }
}

/// Runs diesel queries with a pooled connection on tokio's blocking pool: the closure speaks
/// diesel's own `QueryResult`, mapped to [`DbError`] once here.
pub async fn query<F, T>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |conn| f(conn).map_err(DbError::from)).await
}

/// [`query`] for a short statement on a task's critical path (the agent loop's step write). On
/// a multi-threaded runtime the calling worker runs it itself (`block_in_place`: tokio hands
/// the worker's other tasks to another thread meanwhile), which saves the two thread hand-offs
/// of [`run`], to a blocking thread and back: about 0.15 ms each on a VM whose idle vCPUs halt
/// (`bench/RESULTS.md`, session 6). On a single-threaded runtime (the tests') it is [`query`].
pub async fn query_in_place<F, T>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
        return query(pool, f).await;
    }
    let _permit = pool
        .permits
        .acquire()
        .await
        .map_err(|e| DbError::Task(e.to_string()))?;
    tokio::task::block_in_place(|| {
        let mut conn = pool.inner.get().map_err(DbError::from)?;
        f(&mut conn).map_err(DbError::from)
    })
}

/// Runs `f` with a pooled connection on tokio's blocking pool.
pub async fn run<F, T, E>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let _permit = pool
        .permits
        .acquire()
        .await
        .map_err(|e| E::from(DbError::Task(e.to_string())))?;
    let inner = pool.inner.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = inner.get().map_err(DbError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| E::from(DbError::Task(e.to_string())))?
}
