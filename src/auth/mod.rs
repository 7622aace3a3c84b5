//! The auth role: Better Auth-compatible accounts, sessions and cookies under `/api/auth`.
//! Everything in it is private but its state and `configure`.

mod body;
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
mod session_cache;
mod social;
mod state;
mod store;

pub use handlers::configure;
pub use state::AuthState;
