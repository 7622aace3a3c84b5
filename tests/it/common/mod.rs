//! Shared test harness: a database per test and the real apps in process.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod db;
pub mod jwt;
pub mod logs;
pub mod stand_in;

pub use app::{Seen, TestApp, test_config};
pub use db::TestDb;
