//! Integration tests, one binary (one link) for every area; each file is one area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod cli;
mod config;
mod migrations;
mod platform;
#[cfg(feature = "auth")]
mod rate_limit;
