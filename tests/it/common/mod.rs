//! Shared test harness: a database per test and the real apps in process.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod db;
pub mod server;

pub use app::{Seen, TestApp, test_config};
pub use db::TestDb;
pub use server::LiveServer;
