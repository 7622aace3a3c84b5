//! MCP (Model Context Protocol) on behalf of each user: a client for both protocol eras, the
//! servers a user can use, their tools for web clients, and the operator CLI. The authorization
//! flow (§5.5) comes next.

pub mod cli;
mod client;
mod error;
pub(crate) mod handlers;
pub(crate) mod models;
mod names;
mod schema;
pub(crate) mod service;
mod store;
mod transport;

pub use client::{Era, McpClient};
pub use error::McpError;
pub(crate) use service::ServerFailure;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/mcp-servers", web::post().to(handlers::add))
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
