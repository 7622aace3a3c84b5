//! The auth role: Better Auth-compatible accounts, sessions and cookies under `/api/auth`.
//! Everything in it is private but its state and `configure`.
//!
//! Layout, as in the connectors role: `handlers` parse (one typed body per endpoint,
//! `body::FromFields`, the same struct the OpenAPI document shows), call one function in
//! `service` and render its result (`render.rs`); a handler file imports no other.
//! `service` holds what each endpoint does, with plain inputs (`state::Client` instead of the
//! request) and domain results, no actix types. `store` holds every query, one set of row
//! structs per table (`models`): `store/mod.rs` the `user` and `session` tables (their writes
//! only through `store::Writer`, which keeps the session cache right), `store/accounts.rs`
//! and `store/verifications.rs` the other two.
//! Ids are `db::ids::{UserId, SessionId}`, never bare strings, in rows and store signatures.
//! `rate_limit` is the middleware (`mod.rs`), the rule and bucket choice (`limiter.rs`) and its
//! two stores (`memory.rs`, `database.rs`); `jwt` the signing keys (`keys.rs`, with the one
//! `crypto::Algorithm`), their sealing, the JWKS routes and the `keys` commands' domain side.
//! `config` is the role's own `[auth]` section and its checks (`mail`, `rate_limit`, `jwt`);
//! `platform::config::Config` has it as `config.auth` only in builds with this role.
//! Database errors answer through `DbError`'s own `ResponseError` (503/500, logged once).

mod body;
pub mod config;
mod cookies;
mod email_token;
mod error;
mod handlers;
pub mod jwt;
mod links;
mod mail;
mod models;
mod origin;
mod password;
pub mod rate_limit;
mod render;
mod service;
mod session_cache;
mod social;
mod state;
mod store;

pub use handlers::configure;

/// The role's response headers a browser client may read cross-origin (the platform's CORS
/// exposes them): the JWT plugin's token and the rate limit's retry delay.
pub const EXPOSED_HEADERS: &[&str] = &[SET_AUTH_JWT, rate_limit::RETRY_AFTER_HEADER];

/// The JWT plugin's header on every get-session that returns a session.
const SET_AUTH_JWT: &str = "set-auth-jwt";
pub use state::AuthState;
