//! One poller per process for everything agent runs wait on, instead of one query per waiter per
//! `connectors.agents.poll_ms`: with 1,000 runs streaming to 1,000 SSE clients, per-waiter
//! polling was 4,000 event queries and 4,000 cancel queries a second on pools of a few
//! connections. Now each poll is one query for all the runs watched in this process.
//!
//! - [`EventHub`]: new `agent_events` of the runs whose streams are open here, read with a
//!   cursor per run (so events are read in the same per-run order as a stream reading alone)
//!   and fanned out to that run's streams only.
//! - [`CancelWatch`]: the runs this process is running whose cancel was requested (by any
//!   process).
//!
//! Polling rather than LISTEN/NOTIFY for the reason given in `events/hub.rs`.

use super::models::EventRow;
use crate::db::schema::agent_runs;
use crate::db::{self, DbPool};
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};

/// Most rows read per poll (the rest on the next one, at once).
const BATCH: i64 = 2000;
/// Events buffered per run for its slowest stream; past it the stream reads the database.
const PER_RUN: usize = 512;

struct Feed {
    tx: broadcast::Sender<Arc<EventRow>>,
    /// Every event of the run up to it has been published.
    cursor: i64,
}

/// Fans the events of watched runs out to this process's streams.
#[derive(Clone)]
pub(crate) struct EventHub {
    runs: Arc<Mutex<HashMap<String, Feed>>>,
    started: Arc<AtomicBool>,
    pool: DbPool,
    poll: Duration,
    /// Polls before the interval is up: a run of this process committed events a stream of
    /// this process is waiting for.
    wake: Arc<Notify>,
}

impl EventHub {
    pub fn new(pool: DbPool, poll: Duration) -> Self {
        Self {
            runs: Arc::new(Mutex::new(HashMap::new())),
            started: Arc::new(AtomicBool::new(false)),
            pool,
            poll,
            wake: Arc::new(Notify::new()),
        }
    }

    /// A run executed in this process committed events (a model step, tool calls, its end):
    /// when a stream here follows it, the poller reads them now rather than at its next tick,
    /// so a finished run's last events are not held back by up to one poll interval. Nudges
    /// made during a poll fold into one more poll. (Text deltas do not nudge: they are
    /// frequent, and a tick's delay is what batching them costs anyway.)
    pub fn nudge(&self, run: &str) {
        if self.lock().contains_key(run) {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Feed>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of the run's events above the returned cursor; events up to it (and above
    /// `after`) are the caller's to read from the database. Starts the poller on first use.
    pub fn subscribe(&self, run: &str, after: i64) -> (broadcast::Receiver<Arc<EventRow>>, i64) {
        let sub = {
            let mut runs = self.lock();
            let feed = runs.entry(run.to_owned()).or_insert_with(|| Feed {
                tx: broadcast::channel(PER_RUN).0,
                cursor: after,
            });
            (feed.tx.subscribe(), feed.cursor)
        };
        if !self.started.swap(true, Ordering::SeqCst) {
            let hub = self.clone();
            tokio::spawn(async move { hub.run().await });
        }
        sub
    }

    async fn run(self) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                () = self.wake.notified() => {}
            }
            loop {
                let watched: Vec<(String, i64)> = {
                    let mut runs = self.lock();
                    runs.retain(|_, f| f.tx.receiver_count() > 0);
                    runs.iter().map(|(r, f)| (r.clone(), f.cursor)).collect()
                };
                if watched.is_empty() {
                    break;
                }
                let polled = db::query(&self.pool, move |c| events_of(c, &watched, BATCH)).await;
                let rows = match polled {
                    Ok(rows) => rows,
                    Err(err) => {
                        tracing::warn!(error = %err, "agent event poll failed");
                        break;
                    }
                };
                let full = rows.len() as i64 == BATCH;
                let mut runs = self.lock();
                for (run, row) in rows {
                    if let Some(feed) = runs.get_mut(&run)
                        && row.id > feed.cursor
                    {
                        feed.cursor = row.id;
                        let _ = feed.tx.send(Arc::new(row));
                    }
                }
                drop(runs);
                if !full {
                    break;
                }
            }
        }
    }
}

#[derive(QueryableByName)]
struct Polled {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    run_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    event_type: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    data: serde_json::Value,
}

/// The events of each `(run, cursor)` above its cursor, oldest first, at most `limit` in all
/// (cut by id, so every run's rows up to the last one returned are all there). Each run's rows
/// come from its own index range (`LATERAL`, at most `limit` each: no run has more among the
/// first `limit` of all), so the plan PostgreSQL caches for the statement is the index scan; a
/// plain join's cached plan would scan the whole table, and so the join was planned anew on
/// every poll.
fn events_of(
    conn: &mut PgConnection,
    watched: &[(String, i64)],
    limit: i64,
) -> QueryResult<Vec<(String, EventRow)>> {
    use diesel::sql_types::{Array, BigInt, Text};
    let (runs, cursors): (Vec<&str>, Vec<i64>) =
        watched.iter().map(|(r, c)| (r.as_str(), *c)).unzip();
    let rows: Vec<Polled> = crate::db::prepared(
        "SELECT e.id, e.run_id, e.event_type, e.data \
         FROM unnest($1::text[], $2::bigint[]) AS w(run_id, after) \
         CROSS JOIN LATERAL (SELECT id, run_id, event_type, data FROM agent_events \
             WHERE run_id = w.run_id AND id > w.after ORDER BY id LIMIT $3) e \
         ORDER BY e.id LIMIT $3",
    )
    .bind::<Array<Text>, _>(runs)
    .bind::<Array<BigInt>, _>(cursors)
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|p| {
            (
                p.run_id,
                EventRow {
                    id: p.id,
                    event_type: p.event_type,
                    data: p.data,
                },
            )
        })
        .collect())
}

/// Tells this process's running runs that their cancel was requested.
#[derive(Clone)]
pub(crate) struct CancelWatch {
    runs: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
    started: Arc<AtomicBool>,
    pool: DbPool,
    poll: Duration,
}

/// A run's registration: `cancelled()` resolves once a cancel is seen; dropping it stops the
/// watching.
pub(crate) struct Watching {
    rx: watch::Receiver<bool>,
}

impl Watching {
    /// Whether the poller has seen a cancel request (without waiting).
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        if rx.wait_for(|c| *c).await.is_err() {
            // The watch is gone (never while the run holds this): wait forever, as before.
            std::future::pending::<()>().await;
        }
    }
}

impl CancelWatch {
    pub fn new(pool: DbPool, poll: Duration) -> Self {
        Self {
            runs: Arc::new(Mutex::new(HashMap::new())),
            started: Arc::new(AtomicBool::new(false)),
            pool,
            poll,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn watch(&self, run: &str) -> Watching {
        let rx = self
            .lock()
            .entry(run.to_owned())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        if !self.started.swap(true, Ordering::SeqCst) {
            let w = self.clone();
            tokio::spawn(async move { w.run().await });
        }
        Watching { rx }
    }

    async fn run(self) {
        loop {
            tokio::time::sleep(self.poll).await;
            let ids: Vec<String> = {
                let mut runs = self.lock();
                runs.retain(|_, tx| tx.receiver_count() > 0);
                runs.keys().cloned().collect()
            };
            if ids.is_empty() {
                continue;
            }
            let polled = db::query(&self.pool, move |c| {
                agent_runs::table
                    .filter(agent_runs::id.eq_any(&ids))
                    .filter(agent_runs::cancel_requested)
                    .select(agent_runs::id)
                    .load::<String>(c)
            })
            .await;
            match polled {
                Ok(cancelled) => {
                    let runs = self.lock();
                    for id in cancelled {
                        if let Some(tx) = runs.get(&id) {
                            tx.send_replace(true);
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "agent cancel poll failed"),
            }
        }
    }
}
