//! `GET /metrics` on every role's listener: the queue in Prometheus text. Chosen over a
//! `/readyz` detail because a backlog is not unreadiness (a load balancer must not pull an
//! instance because the shared queue is long) and because Prometheus scrapes this format as is.
//! Counts only; no payload, error text or secret leaves through it.

use crate::db::{self, DbError};
use crate::jobs::store;
use crate::platform::clock::SharedClock;
use crate::platform::error::render;
use crate::platform::state::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use std::collections::BTreeMap;
use std::fmt::Write;

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
            .body(render_text(&rows, &platform.clock)),
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

#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub struct MetricsApi;
