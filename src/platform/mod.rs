//! Shared infrastructure that knows neither role: configuration, the error envelope, the app
//! builder, health, telemetry, the clock.

pub mod app;
pub mod clock;
pub mod config;
pub mod error;
pub mod health;
pub mod notify;
pub mod openapi;
pub mod proxy;
pub mod redirect;
pub mod role;
pub mod route;
pub mod secret;
pub mod shutdown;
pub mod ssrf;
pub mod state;
pub mod telemetry;
