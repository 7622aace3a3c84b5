//! switchboard: a Better Auth-compatible auth role and a connectors role in one binary.
//! Each role is a Cargo feature; `server` mounts the ones compiled in.

#[cfg(feature = "auth")]
pub mod auth;
pub mod cli;
#[cfg(feature = "connectors")]
pub mod connectors;
pub mod crypto;
pub mod db;
#[cfg(test)]
mod errors_used;
pub mod jobs;
pub mod platform;
pub mod server;
#[cfg(feature = "connectors")]
pub mod trust;
