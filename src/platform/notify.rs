//! PostgreSQL `LISTEN/NOTIFY` between the processes of a scaled-out deployment: a change made
//! through one process (a sign-out, a key rotation) reaches every other one at once.
//!
//! Sending is [`send`], a `pg_notify` on the connection that made the change (inside its
//! transaction where there is one, so a rolled-back change announces nothing). Receiving is a
//! [`Listener`]: a thread of its own with a dedicated connection that `LISTEN`s and polls for
//! notifications every [`POLL`]. Why diesel's `PgConnection::notifications_iter` and a thread
//! rather than tokio-postgres: it is the client the project already has (same URL, TLS and
//! libpq behaviour), polling a socket that has nothing to read costs one non-blocking syscall,
//! and a second PostgreSQL stack would be a second set of connection settings to keep in step.
//!
//! The receiver's contract: on [`Event::Connected`] (first connect and every reconnect) it must
//! assume it missed notifications and drop what it remembers; while the connection is down it
//! falls back to its own expiry (the session cache's TTL, the key store's reload interval). The
//! thread ends once its handler says the owner is gone, or when its [`Listener`] handle drops.

use diesel::prelude::*;
use diesel::sql_types::Text;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Session and user changes: the payload is `session_cache::Notice` JSON.
pub const SESSION_CHANNEL: &str = "switchboard_session";
/// A signing key was added or withdrawn: reload the key set now.
pub const KEYS_CHANNEL: &str = "switchboard_keys";
/// How often the listener looks for notifications.
pub const POLL: Duration = Duration::from_millis(20);
/// How often an idle listener proves its connection is alive.
const PING: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Announces `payload` on `channel` (delivered when the surrounding transaction commits).
pub fn send(conn: &mut PgConnection, channel: &str, payload: &str) -> QueryResult<()> {
    crate::db::prepared("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .map(|_| ())
}

/// What a listener tells its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Listening (again): anything may have changed meanwhile.
    Connected,
    /// The connection dropped; a reconnect follows with backoff.
    Lost,
    Notification {
        channel: String,
        payload: String,
    },
    /// Nothing arrived this poll: a chance to stop once the owner is gone.
    Idle,
}

/// What the handler answers: keep listening, or stop (its owner is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// A running listener thread, stopped and joined when this handle drops (with its owner), so no
/// listener is left inside libpq while the process exits: a connection dropped after the exit
/// handlers ran (OpenSSL's among them) crashed the process with a double free now and then.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long dropping a [`Listener`] waits for its thread (one poll, or a connect in progress);
/// past it the thread is left to end by itself.
const JOIN_WAIT: Duration = Duration::from_secs(2);

impl Listener {
    /// Listens on `channels` at `url` until `handler` answers [`Flow::Stop`] or the handle drops.
    pub fn spawn(
        url: String,
        channels: &[&'static str],
        mut handler: impl FnMut(Event) -> Flow + Send + 'static,
    ) -> std::io::Result<Self> {
        let channels = channels.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut handler = move |event: Event| {
            if stopped.load(Ordering::Acquire) {
                Flow::Stop
            } else {
                handler(event)
            }
        };
        let thread = std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || run(&url, &channels, &mut handler))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.thread().id() == std::thread::current().id() {
            return;
        }
        let until = Instant::now() + JOIN_WAIT;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

fn run(url: &str, channels: &[&'static str], handler: &mut dyn FnMut(Event) -> Flow) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match listen(url, channels) {
            Ok(mut conn) => {
                backoff = BACKOFF_MIN;
                tracing::debug!(?channels, "listening for changes made by other processes");
                if handler(Event::Connected) == Flow::Stop {
                    return;
                }
                if poll(&mut conn, handler) == Flow::Stop {
                    return;
                }
                tracing::warn!(
                    "lost the LISTEN connection: changes made by other processes show after \
                     the cache TTL until it is back"
                );
                if handler(Event::Lost) == Flow::Stop {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN connection failed; retrying");
            }
        }
        // Sleep the backoff in short steps, so a gone owner ends the thread promptly.
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if handler(Event::Idle) == Flow::Stop {
                return;
            }
            std::thread::sleep(POLL.min(until - Instant::now()));
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The listener's connection shows under this name in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "switchboard-listen";

fn listen(url: &str, channels: &[&'static str]) -> Result<PgConnection, String> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}application_name={APPLICATION_NAME}");
    let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
    for channel in channels {
        // Channel names are this module's constants, quoted as identifiers.
        diesel::sql_query(format!("LISTEN \"{channel}\""))
            .execute(&mut conn)
            .map_err(|e| e.to_string())?;
    }
    Ok(conn)
}

/// Hands every notification to `handler` until the connection fails (`Continue`) or the handler
/// says stop.
fn poll(conn: &mut PgConnection, handler: &mut dyn FnMut(Event) -> Flow) -> Flow {
    let mut pinged = Instant::now();
    loop {
        let mut got = Vec::new();
        for next in conn.notifications_iter() {
            match next {
                Ok(n) => got.push(Event::Notification {
                    channel: n.channel,
                    payload: n.payload,
                }),
                Err(_) => return Flow::Continue,
            }
        }
        if got.is_empty() {
            got.push(Event::Idle);
        }
        for event in got {
            if handler(event) == Flow::Stop {
                return Flow::Stop;
            }
        }
        if pinged.elapsed() >= PING {
            if diesel::sql_query("SELECT 1").execute(conn).is_err() {
                return Flow::Continue;
            }
            pinged = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}
