//! Integration tests, one binary (one link) for every area; each file is one area.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails at the first unmet expectation, with its message"
)]

mod common;

#[cfg(all(feature = "auth", feature = "connectors"))]
mod adopt;
mod auth_account;
mod auth_session;
mod auth_sign;
mod cli;
#[cfg(all(feature = "auth", feature = "connectors"))]
mod config;
#[cfg(feature = "connectors")]
mod connectors;
#[cfg(feature = "connectors")]
mod events;
#[cfg(feature = "auth")]
mod github;
#[cfg(feature = "auth")]
mod hostile_input;
#[cfg(feature = "auth")]
mod interop;
mod jobs;
#[cfg(all(feature = "auth", feature = "connectors"))]
mod jwt;
#[cfg(feature = "auth")]
mod mail;
mod migrations;
mod openapi;
mod platform;
mod prepared;
#[cfg(feature = "auth")]
mod rate_limit;
#[cfg(feature = "auth")]
mod reset;
#[cfg(feature = "auth")]
mod scale;
#[cfg(all(feature = "auth", feature = "connectors"))]
mod scale_out;
mod screening;
#[cfg(feature = "auth")]
mod session_cache;
#[cfg(all(feature = "auth", feature = "connectors"))]
mod trust;
#[cfg(feature = "auth")]
mod verification;
#[cfg(feature = "connectors")]
mod webhooks;
