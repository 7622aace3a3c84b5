//! `GET /metrics` on every role's listener: the queue in Prometheus text. Chosen over a
//! `/readyz` detail because a backlog is not unreadiness (a load balancer must not pull an
//! instance because the shared queue is long) and because Prometheus scrapes this format as is.
//! Counts only; no payload, error text or secret leaves through it. Besides the queue, the
//! latency histograms other modules [`register`] (e.g. the agent loop's own time per turn).

use crate::db::{self, DbError};
use crate::jobs::store;
use crate::platform::clock::SharedClock;
use crate::platform::error::render;
use crate::platform::state::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(metrics));
}

/// Queue depth per kind and state, the age of the oldest queued job, and dead jobs.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition (version 0.0.4)", content_type = "text/plain"),
        (status = 503, description = "The database is unreachable")))]
pub async fn metrics(platform: web::Data<Platform>) -> HttpResponse {
    let stats = db::run(&platform.pool, store::stats).await;
    match stats {
        Ok(rows) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .insert_header(("cache-control", "no-store"))
            .body({
                let mut text = render_text(&rows, &platform.clock);
                render_histograms(&mut text);
                text
            }),
        Err(err) => {
            let err: DbError = err;
            tracing::warn!(error = %err, "metrics: reading the queue failed");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                "The database is unreachable",
            )
        }
    }
}

fn render_text(rows: &[store::StatRow], clock: &SharedClock) -> String {
    let now = clock.now();
    let mut out = String::new();
    let mut depth: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut oldest: BTreeMap<&str, f64> = BTreeMap::new();
    let mut dead = 0i64;
    for r in rows {
        depth.insert((r.kind.as_str(), r.state.as_str()), r.count);
        if r.state == "queued" {
            let age = (now - r.oldest).num_milliseconds().max(0) as f64 / 1000.0;
            oldest.insert(r.kind.as_str(), age);
        }
        if r.state == "dead" {
            dead += r.count;
        }
    }
    let _ = writeln!(
        out,
        "# HELP switchboard_jobs Jobs in the queue by kind and state."
    );
    let _ = writeln!(out, "# TYPE switchboard_jobs gauge");
    for ((kind, state), n) in &depth {
        let _ = writeln!(
            out,
            "switchboard_jobs{{kind=\"{kind}\",state=\"{state}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchboard_jobs_oldest_queued_seconds Age of the oldest queued job by kind."
    );
    let _ = writeln!(out, "# TYPE switchboard_jobs_oldest_queued_seconds gauge");
    for (kind, age) in &oldest {
        let _ = writeln!(
            out,
            "switchboard_jobs_oldest_queued_seconds{{kind=\"{kind}\"}} {age:.3}"
        );
    }
    let queued: i64 = depth
        .iter()
        .filter(|((_, s), _)| *s == "queued")
        .map(|(_, n)| n)
        .sum();
    let _ = writeln!(
        out,
        "# HELP switchboard_jobs_queued_total Queue depth: jobs waiting, all kinds."
    );
    let _ = writeln!(out, "# TYPE switchboard_jobs_queued_total gauge");
    let _ = writeln!(out, "switchboard_jobs_queued_total {queued}");
    let _ = writeln!(
        out,
        "# HELP switchboard_jobs_dead_total Jobs that used their attempts (see `switchboard jobs list --state dead`)."
    );
    let _ = writeln!(out, "# TYPE switchboard_jobs_dead_total gauge");
    let _ = writeln!(out, "switchboard_jobs_dead_total {dead}");
    out
}

/// Upper bounds of the buckets, in microseconds (then `+Inf`).
const BOUNDS_US: [u64; 24] = [
    50, 100, 150, 200, 300, 400, 500, 600, 800, 1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000,
    5_000, 7_500, 10_000, 20_000, 50_000, 100_000, 500_000, 1_000_000,
];

/// A Prometheus histogram of durations (seconds), lock-free, for a `static`.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            counts: [const { AtomicU64::new(0) }; BOUNDS_US.len() + 1],
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|b| *b < us);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let (name, help) = (self.name, self.help);
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match BOUNDS_US.get(i) {
                Some(b) => {
                    let le = *b as f64 / 1e6;
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

static HISTOGRAMS: Mutex<Vec<&'static Histogram>> = Mutex::new(Vec::new());

/// Adds a histogram to `/metrics` (once; later calls with the same one are ignored).
pub fn register(h: &'static Histogram) {
    let mut all = HISTOGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|x| std::ptr::eq(*x, h)) {
        all.push(h);
    }
}

fn render_histograms(out: &mut String) {
    let all = HISTOGRAMS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for h in all {
        h.render(out);
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub struct MetricsApi;
