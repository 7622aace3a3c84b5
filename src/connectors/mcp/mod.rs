//! MCP (Model Context Protocol) on behalf of each user: a client for both protocol eras, the
//! servers a user can use, their authorization (§5.5), their tools for web clients, and the
//! operator CLI.

mod auth;
mod auth_flow;
pub(crate) mod auth_handlers;
pub mod cli;
mod client;
mod error;
pub(crate) mod handlers;
pub(crate) mod models;
mod names;
mod reach;
mod recorder;
mod schema;
pub(crate) mod service;
mod store;
mod transport;

pub use client::{Era, McpClient};
pub use error::McpError;
pub(crate) use recorder::Recorder;
pub(crate) use service::ServerFailure;
pub(crate) use store::delete_stale_flows as delete_stale_auth_flows;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before `/api/mcp-servers/{id}`: `callback` and `complete` are not server ids.
    cfg.route(
        "/api/mcp-servers/callback",
        web::get().to(auth_handlers::callback),
    )
    .route(
        "/api/mcp-servers/complete",
        web::post().to(auth_handlers::complete),
    )
    .route(
        "/mcp/client-metadata.json",
        web::get().to(auth_handlers::client_metadata),
    )
    .route(
        "/api/mcp-servers/{id}/authorize",
        web::post().to(auth_handlers::authorize),
    )
    .route("/api/mcp-servers", web::post().to(handlers::add))
    .route("/api/mcp-servers", web::get().to(handlers::list))
    .route("/api/mcp-servers/{id}", web::get().to(handlers::get))
    .route("/api/mcp-servers/{id}", web::delete().to(handlers::delete))
    .route(
        "/api/mcp-servers/{id}/tools",
        web::get().to(handlers::tools),
    )
    .route(
        "/api/mcp-servers/{id}/tools/{name}/call",
        web::post().to(handlers::call),
    )
    .route("/api/tools", web::get().to(handlers::all_tools))
    .route(
        "/api/tools/{name}/call",
        web::post().to(handlers::call_namespaced),
    );
}
