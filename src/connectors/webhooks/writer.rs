//! Group commit for the intake: verified deliveries queue here, and a few writer threads (each
//! with its own connection) store **everything queued** in one statement and one commit the
//! moment their previous batch has committed. No timer: a lone delivery is written at once, and
//! under load PostgreSQL pays one transaction for many deliveries instead of one each.
//!
//! Every request still gets its own answer, and only after the commit: stored, duplicate (a
//! delivery id seen before, or twice in one batch: the first is stored), or not stored (the
//! batch failed; nothing of it was written). A batch that fails for a reason other than the
//! connection is retried one delivery at a time, so one delivery PostgreSQL refuses cannot
//! take the others down with it.

use super::route::ROUTE_KIND;
use crate::db::{DbError, DbPool};
use crate::platform::clock::SharedClock;
use actix_web::web::BytesMut;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Array, Integer, Jsonb, Nullable, Text, Timestamptz};
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, oneshot};

/// A verified delivery on its way to the database.
#[derive(Debug)]
pub struct Delivery {
    pub provider: &'static str,
    pub delivery: String,
    pub event_type: String,
    pub action: Option<String>,
    /// The verified raw body (checked storable as `jsonb` by the envelope scan).
    pub payload: BytesMut,
}

/// Why a delivery was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Db(#[from] DbError),
    /// The writers stopped (shutdown) before this delivery's turn.
    #[error("the intake writers have stopped")]
    Stopped,
}

struct Pending {
    delivery: Delivery,
    reply: oneshot::Sender<Result<bool, WriteError>>,
}

enum Msg {
    Delivery(Pending),
    /// Sent once at shutdown: the writers write what is queued, then exit.
    Stop,
}

/// The handle requests submit through (cheap to share; one per process).
pub struct IntakeWriter {
    tx: mpsc::Sender<Msg>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// What the writer threads share.
struct Shared {
    inbox: Mutex<Inbox>,
    pool: DbPool,
    clock: SharedClock,
    max_attempts: i32,
    batch_max: usize,
    batch_max_bytes: usize,
    /// Wakes this process's job workers after a batch stored new deliveries.
    wake: Arc<Notify>,
}

struct Inbox {
    rx: mpsc::Receiver<Msg>,
    /// A delivery that did not fit the last batch's byte cap: first in the next one.
    carry: Option<Pending>,
    stopping: bool,
}

/// How the writers are set up.
pub struct WriterConfig {
    pub writers: usize,
    pub batch_max: usize,
    pub batch_max_bytes: usize,
    pub max_attempts: i32,
}

impl IntakeWriter {
    /// Starts `writers` threads on `pool` (give it `writers` connections of its own, so intake
    /// never waits behind other requests or the job workers for a connection).
    pub fn start(
        pool: DbPool,
        clock: SharedClock,
        wake: Arc<Notify>,
        config: &WriterConfig,
    ) -> std::io::Result<Self> {
        let batch_max = config.batch_max.max(1);
        // Room for a few batches per writer; past it a request waits (in async land) to queue.
        let (tx, rx) = mpsc::channel(batch_max.saturating_mul(4 * config.writers.max(1)));
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox {
                rx,
                carry: None,
                stopping: false,
            }),
            pool,
            clock,
            max_attempts: config.max_attempts.max(1),
            batch_max,
            batch_max_bytes: config.batch_max_bytes.max(1),
            wake,
        });
        let mut threads = Vec::new();
        for i in 0..config.writers.max(1) {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("intake-writer-{i}"))
                    .spawn(move || writer_loop(&shared))?,
            );
        }
        Ok(Self {
            tx,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a delivery and waits for its batch's commit: `true` stored, `false` a duplicate.
    /// A request dropped meanwhile (client gone) leaves its delivery queued: it is written all
    /// the same and its answer is dropped, never blocking the writer.
    pub async fn submit(&self, delivery: Delivery) -> Result<bool, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Delivery(Pending { delivery, reply }))
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Graceful shutdown: everything queued before this call is written and answered, then the
    /// threads exit; waits for them.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Msg::Stop).await;
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

fn writer_loop(shared: &Shared) {
    while let Some(batch) = take_batch(shared) {
        write_and_answer(shared, batch);
    }
}

/// The next batch: blocks for its first delivery, then takes whatever else is queued right now
/// (up to the caps). `None` when the writers are to exit.
fn take_batch(shared: &Shared) -> Option<Vec<Pending>> {
    let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
    let mut batch = Vec::new();
    let mut bytes = 0;
    if let Some(p) = inbox.carry.take() {
        bytes += p.delivery.payload.len();
        batch.push(p);
    }
    while batch.len() < shared.batch_max {
        let msg = if batch.is_empty() && !inbox.stopping {
            inbox.rx.blocking_recv()
        } else {
            inbox.rx.try_recv().ok()
        };
        match msg {
            Some(Msg::Delivery(p)) => {
                let size = p.delivery.payload.len();
                if !batch.is_empty() && bytes + size > shared.batch_max_bytes {
                    inbox.carry = Some(p);
                    break;
                }
                bytes += size;
                batch.push(p);
            }
            // From now on no writer waits: what is queued is written, then they exit.
            Some(Msg::Stop) => inbox.stopping = true,
            None => break,
        }
    }
    (!batch.is_empty()).then_some(batch)
}

fn write_and_answer(shared: &Shared, batch: Vec<Pending>) {
    let (deliveries, replies): (Vec<Delivery>, Vec<_>) =
        batch.into_iter().map(|p| (p.delivery, p.reply)).unzip();
    let outcomes = write_batch(shared, &deliveries);
    if outcomes.iter().any(|o| matches!(o, Ok(true))) {
        shared.wake.notify_one();
    }
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // The request may be gone (its client hung up): its row is written all the same.
        let _ = reply.send(outcome);
    }
}

/// One statement for the batch; if PostgreSQL refuses it for something other than the
/// connection, each delivery again alone, so only the one it refuses fails.
fn write_batch(shared: &Shared, deliveries: &[Delivery]) -> Vec<Result<bool, WriteError>> {
    let mut conn = match shared.pool.get() {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(error = %err, count = deliveries.len(), "intake batch not stored: no database connection");
            let message = err.to_string();
            return deliveries
                .iter()
                .map(|_| Err(DbError::Unavailable(message.clone()).into()))
                .collect();
        }
    };
    let now = shared.clock.now();
    match store_batch(&mut conn, deliveries, now, shared.max_attempts) {
        Ok(stored) => stored.into_iter().map(Ok).collect(),
        Err(err) if deliveries.len() > 1 && !matches!(err, DbError::Unavailable(_)) => {
            tracing::warn!(error = %err, count = deliveries.len(), "intake batch refused; storing its deliveries one by one");
            deliveries
                .iter()
                .map(|d| {
                    store_batch(&mut conn, std::slice::from_ref(d), now, shared.max_attempts)
                        .map(|s| s.first().copied().unwrap_or(false))
                        .map_err(WriteError::from)
                })
                .collect()
        }
        Err(err) => {
            tracing::warn!(error = %err, count = deliveries.len(), "intake batch not stored");
            let message = err.to_string();
            deliveries
                .iter()
                .map(|_| Err(DbError::Unavailable(message.clone()).into()))
                .collect()
        }
    }
}

/// Stores a batch of deliveries and, when any of them is new, one routing job for the batch
/// (`{"deliveries": n}`; it routes every pending delivery, see [`super::route`]), in one
/// statement (so one commit): per delivery, in order, `true` when it was stored and `false`
/// when its id was already stored or came earlier in the same batch.
pub fn store_batch(
    conn: &mut PgConnection,
    deliveries: &[Delivery],
    now: chrono::DateTime<chrono::Utc>,
    max_attempts: i32,
) -> Result<Vec<bool>, DbError> {
    let query = BatchInsert {
        providers: deliveries.iter().map(|d| d.provider).collect(),
        ids: deliveries.iter().map(|d| d.delivery.as_str()).collect(),
        types: deliveries.iter().map(|d| d.event_type.as_str()).collect(),
        actions: deliveries.iter().map(|d| d.action.as_deref()).collect(),
        payloads: deliveries.iter().map(|d| RawJson(&d.payload)).collect(),
        now,
        job_kind: ROUTE_KIND,
        max_attempts: max_attempts.max(1),
    };
    let inserted: Vec<(String, String)> = query.load(conn)?;
    let mut new: HashSet<(&str, &str)> = inserted
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_str()))
        .collect();
    Ok(deliveries
        .iter()
        .map(|d| new.remove(&(d.provider, d.delivery.as_str())))
        .collect())
}

/// The batch as arrays (a fixed number of binds, so one cached prepared statement for any
/// batch size). Rows go in ordered by (provider, delivery id): two writers (or processes)
/// inserting overlapping ids then wait for each other in one order and cannot deadlock; the
/// first of two copies in a batch (by arrival) is the one kept. The batch's `webhook_route` job:
/// priority 0, due now, no dedupe key (a dedupe while queued would need the writers to lock
/// the waiting job; one small row per batch is cheaper than that serialisation).
struct BatchInsert<'a> {
    providers: Vec<&'a str>,
    ids: Vec<&'a str>,
    types: Vec<&'a str>,
    actions: Vec<Option<&'a str>>,
    payloads: Vec<RawJson<'a>>,
    now: chrono::DateTime<chrono::Utc>,
    job_kind: &'a str,
    max_attempts: i32,
}

const BATCH_SQL_HEAD: &str = "WITH input AS (SELECT * FROM unnest(";
const BATCH_SQL_EVENTS: &str = ") WITH ORDINALITY AS t(provider, delivery_id, event_type, action, payload, ord)), \
     e AS (INSERT INTO webhook_events (provider, delivery_id, event_type, action, payload, received_at) \
     SELECT DISTINCT ON (provider, delivery_id) provider, delivery_id, event_type, action, payload, ";
const BATCH_SQL_JOBS: &str = " FROM input ORDER BY provider, delivery_id, ord \
     ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id, provider, delivery_id), \
     j AS (INSERT INTO jobs (kind, payload, priority, max_attempts, run_at, created_at, updated_at) \
     SELECT ";
const BATCH_SQL_END: &str =
    ", $6, $6, $6 WHERE EXISTS (SELECT 1 FROM e)) SELECT provider, delivery_id FROM e";

impl QueryId for BatchInsert<'_> {
    type QueryId = BatchInsert<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for BatchInsert<'_> {
    type SqlType = (Text, Text);
}

impl RunQueryDsl<PgConnection> for BatchInsert<'_> {}

impl QueryFragment<Pg> for BatchInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(BATCH_SQL_HEAD);
        out.push_bind_param::<Array<Text>, _>(&self.providers)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.types)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.actions)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Jsonb>, _>(&self.payloads)?;
        out.push_sql(BATCH_SQL_EVENTS);
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(BATCH_SQL_JOBS);
        out.push_bind_param::<Text, _>(self.job_kind)?;
        out.push_sql(", jsonb_build_object('deliveries', (SELECT count(*) FROM e)), 0, ");
        out.push_bind_param::<Integer, _>(&self.max_attempts)?;
        out.push_sql(BATCH_SQL_END);
        Ok(())
    }
}

/// A verified body as `jsonb`, bound as received (jsonb's binary input: version 1, then the
/// JSON text).
#[derive(Debug, Clone, Copy)]
struct RawJson<'a>(&'a [u8]);

impl ToSql<Jsonb, Pg> for RawJson<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[1])?;
        out.write_all(self.0)?;
        Ok(serialize::IsNull::No)
    }
}
