//! Integration tests, one binary (one link) for every area; each file is one area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod cli;
mod config;
#[cfg(feature = "connectors")]
mod connectors;
mod migrations;
mod platform;
