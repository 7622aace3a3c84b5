//! `switchboard jobs list [--state …]`, `jobs retry ID`, `jobs retry --dead`: over a connection
//! of their own, printing plain text.

use crate::jobs::store;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::config::Config;
use anyhow::Context;
use diesel::Connection;
use std::fmt::Write;

fn connect(config: &Config) -> anyhow::Result<diesel::PgConnection> {
    diesel::PgConnection::establish(config.database.url.expose())
        .context("connecting to the database")
}

/// One line per job: id, kind, state, attempts, run_at, dedupe key, last error.
pub fn list(config: &Config, states: &[String], limit: i64) -> anyhow::Result<String> {
    for state in states {
        if !matches!(state.as_str(), "queued" | "running" | "dead") {
            anyhow::bail!("--state must be queued, running or dead (got {state:?})");
        }
    }
    let mut conn = connect(config)?;
    let rows = store::list(&mut conn, states, limit).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = String::new();
    out.push_str(
        "        ID  KIND             STATE    ATTEMPTS  RUN_AT                    LAST_ERROR\n",
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:>10}  {:<16} {:<8} {:>4}/{:<3}  {:<25} {}",
            r.id,
            r.kind,
            r.state,
            r.attempts,
            r.max_attempts,
            r.run_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            r.last_error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "{} job(s)", rows.len());
    Ok(out)
}

/// `retry ID`: the job is queued again now with fresh attempts.
pub fn retry(config: &Config, id: i64) -> anyhow::Result<String> {
    let mut conn = connect(config)?;
    let now = SystemClock.now();
    if store::retry(&mut conn, now, id).map_err(|e| anyhow::anyhow!("{e}"))? {
        Ok(format!("job {id} queued again\n"))
    } else {
        anyhow::bail!(
            "no job {id} that is queued or dead (finished jobs are deleted; running ones cannot be retried)"
        )
    }
}

/// `retry --dead`: every dead job queued again now.
pub fn retry_dead(config: &Config) -> anyhow::Result<String> {
    let mut conn = connect(config)?;
    let n = store::retry_dead(&mut conn, SystemClock.now()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(format!("{n} dead job(s) queued again\n"))
}
