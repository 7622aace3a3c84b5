//! Shared test harness: a database per test and the real apps in process.

pub mod app;
pub mod auth;
pub mod db;
/// A server on its own thread, for tests that block (running node).
pub mod http;
pub mod jwt;
pub mod logs;
pub mod mail;
pub mod rows;
/// A server on the test's runtime, sharing its clock and database.
pub mod server;
pub mod stand_in;

pub use app::{Seen, TestApp, test_config};
pub use db::TestDb;
pub use server::LiveServer;
