//! Tool-call records written off the response path: a bounded queue and one background writer
//! that inserts whatever has queued up in one statement. A call never waits for the database
//! unless the queue is full; then it writes its own row (one round trip) rather than drop it,
//! so every call is recorded and a database that falls behind slows callers down instead of
//! losing rows. [`Recorder::flush`] waits until everything queued before it is written (shutdown
//! and tests use it).

use super::models::CallRecord;
use super::store;
use crate::db::{self, DbPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most records one INSERT carries.
const BATCH: usize = 500;

#[expect(
    clippy::large_enum_variant,
    reason = "nearly every message is a record: boxing it would add an allocation to each call for nothing"
)]
enum Msg {
    Record(CallRecord),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Recorder {
    pool: DbPool,
    /// None without a tokio runtime (then every call writes its own row).
    tx: Option<mpsc::Sender<Msg>>,
    /// Calls that found the queue full and wrote their own row.
    overflowed: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts the writer on the current tokio runtime, if there is one.
    pub fn start(pool: DbPool, capacity: usize) -> Self {
        let tx = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (tx, rx) = mpsc::channel(capacity.max(1));
            rt.spawn(write_batches(pool.clone(), rx));
            tx
        });
        Self {
            pool,
            tx,
            overflowed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues the record; writes it here only when the queue is full or gone.
    pub async fn record(&self, record: CallRecord) {
        let record = match &self.tx {
            Some(tx) => match tx.try_send(Msg::Record(record)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(Msg::Record(r))) => {
                    let n = self.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            overflowed = n,
                            "the MCP call-record queue is full; calls write their own rows"
                        );
                    }
                    r
                }
                Err(mpsc::error::TrySendError::Closed(Msg::Record(r))) => r,
                // Only records go through `try_send`.
                Err(_) => return,
            },
            None => record,
        };
        let server_id = record.server_id.clone();
        if let Err(e) = db::query(&self.pool, move |c| {
            store::record_calls(c, std::slice::from_ref(&record))
        })
        .await
        {
            tracing::error!(error = %e, server_id, "recording an MCP tool call failed");
        }
    }

    /// Returns once every record queued before this call is written (or failed to be).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batches(pool: DbPool, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<CallRecord> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r) => batch.push(r),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() >= BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let rows = std::mem::take(&mut batch);
            let n = rows.len();
            if let Err(e) = db::query(&pool, move |c| store::record_calls(c, &rows)).await {
                tracing::error!(error = %e, records = n, "recording MCP tool calls failed");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}
