//! Shared test harness: a database per test and the real apps in process.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod auth;
pub mod db;
pub mod http;
pub mod mail;
pub mod rows;

pub use app::{Seen, TestApp, test_config};
pub use db::TestDb;
pub use http::LiveServer;
