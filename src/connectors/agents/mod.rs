//! Agent runs: a prompt and the owner's MCP tools in Anthropic's tool-use loop, run as a
//! durable job that resumes after a crash, streamed to web clients from any process.

mod error;
pub(crate) mod handlers;
pub(crate) mod hub;
pub(crate) mod models;
mod run;
pub(crate) mod service;
pub(crate) mod store;
mod tools;
mod writes;

pub use error::AgentsError;
pub(crate) use run::{AWAITING_INPUT, calls_of, conversation, run_job, tool_result};
pub use run::{RUN_KIND, TURN_DB_WAIT, TURN_OVERHEAD};
pub(crate) use tools::text;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/agent-runs", web::post().to(handlers::create))
        .route("/api/agent-runs", web::get().to(handlers::list))
        .route("/api/agent-runs/{id}", web::get().to(handlers::get))
        .route(
            "/api/agent-runs/{id}/cancel",
            web::post().to(handlers::cancel),
        )
        .route(
            "/api/agent-runs/{id}/events",
            web::get().to(handlers::events),
        );
}
