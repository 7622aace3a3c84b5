//! Integration tests, one binary (one link) for every area; each file is one area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod cli;
mod config;
#[cfg(all(feature = "auth", feature = "connectors"))]
mod jwt;
mod migrations;
mod platform;
#[cfg(all(feature = "auth", feature = "connectors"))]
mod trust;
