//! The r2d2 pool of PostgreSQL connections and [`run`], the one way async code reaches it: every
//! query runs on the blocking pool, never on an async worker.

use crate::db::DbError;
use crate::platform::config::DatabaseConfig;
use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use std::time::Duration;

pub type DbPool = Pool<ConnectionManager<PgConnection>>;

/// Builds the pool without connecting: the process starts while the database is down and
/// `/readyz` says so, instead of refusing to start.
pub fn build_pool(config: &DatabaseConfig) -> DbPool {
    Pool::builder()
        .max_size(config.pool_max_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(config.connect_timeout_secs.max(1)))
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(config.url.expose()))
}

/// Runs `f` with a pooled connection on tokio's blocking pool.
pub async fn run<F, T, E>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| E::from(DbError::Task(e.to_string())))?
}
