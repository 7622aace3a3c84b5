//! Shared test harness: a database per test and the real apps in process.
//! With both roles compiled in, every item here is used; a single-role build uses part of it.
#![cfg_attr(
    not(all(feature = "auth", feature = "connectors")),
    allow(
        dead_code,
        unused_imports,
        reason = "a single-role build uses part of the harness"
    )
)]

pub mod app;
pub mod auth;
pub mod db;
/// A server on its own thread, for tests that block (running node).
pub mod http;
#[cfg(feature = "connectors")]
pub mod jobs;
pub mod jwt;
pub mod logs;
pub mod mail;
#[cfg(feature = "connectors")]
pub mod mcp;
pub mod rows;
/// A server on the test's runtime, sharing its clock and database.
pub mod server;
pub mod stand_in;

pub use app::{Seen, TestApp, test_config};
pub use db::TestDb;
pub use server::LiveServer;
