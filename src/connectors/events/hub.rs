//! One poller per process that reads new feed rows and fans them out to this process's SSE
//! streams. Polling (every `webhooks.stream_poll_ms`) rather than LISTEN/NOTIFY: diesel's
//! connection has no async notification wait, so a listener would hold a connection and a
//! blocking thread per process and still poll; one indexed range query a few times a second,
//! and only while a stream is open, is cheaper and crosses processes the same way.

use super::store::{self, FeedRow};
use crate::db::{self, DbError, DbPool};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// `last`: every row up to it has been published. Publishing and moving `last` happen under
/// the lock, and so does a subscription, so a stream knows exactly which rows it must read
/// itself (up to `last`) and which will reach it (above `last`).
#[derive(Clone)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Arc<FeedRow>>,
    last: Arc<Mutex<Option<i64>>>,
    started: Arc<AtomicBool>,
    pool: DbPool,
    poll: Duration,
}

impl Hub {
    pub fn new(pool: DbPool, poll: Duration) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            tx,
            last: Arc::new(Mutex::new(None)),
            started: Arc::new(AtomicBool::new(false)),
            pool,
            poll,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<i64>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of every row above the returned cursor; rows up to it are the caller's to
    /// read from the database. Starts the poller on first use.
    pub async fn subscribe(&self) -> Result<(broadcast::Receiver<Arc<FeedRow>>, i64), DbError> {
        if self.lock().is_none() {
            let max = db::run(&self.pool, store::max_cursor).await?;
            let mut last = self.lock();
            if last.is_none() {
                *last = Some(max);
            }
        }
        let (rx, at) = {
            let last = self.lock();
            (self.tx.subscribe(), last.unwrap_or(0))
        };
        if !self.started.swap(true, Ordering::SeqCst) {
            let hub = self.clone();
            tokio::spawn(async move { hub.run().await });
        }
        Ok((rx, at))
    }

    async fn run(self) {
        loop {
            tokio::time::sleep(self.poll).await;
            let from = {
                let mut last = self.lock();
                if self.tx.receiver_count() == 0 {
                    // Nobody listens: stop reading; the next subscriber starts from the top.
                    *last = None;
                }
                *last
            };
            let Some(from) = from else { continue };
            let mut after = from;
            loop {
                let polled = db::run(&self.pool, move |conn| store::since(conn, after, 500)).await;
                let rows = match polled {
                    Ok(rows) => rows,
                    Err(err) => {
                        tracing::warn!(error = %err, "event stream poll failed");
                        break;
                    }
                };
                let full = rows.len() == 500;
                let mut last = self.lock();
                if *last != Some(after) {
                    break;
                }
                for row in rows {
                    after = after.max(row.cursor);
                    let _ = self.tx.send(Arc::new(row));
                }
                *last = Some(after);
                drop(last);
                if !full {
                    break;
                }
            }
        }
    }
}
