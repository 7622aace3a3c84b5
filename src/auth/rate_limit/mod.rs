//! Better Auth's rate limits (spec §7) for the auth role: at most `max` requests per window per
//! client IP and path, checked before routing and body parsing, refused with 429 + `X-Retry-After`.
//!
//! Why not actix-governor: its GCRA refills continuously, whereas Better Auth's window slides from
//! the last *allowed* request, which clients see in `X-Retry-After`; and the crate is GPL. So this
//! runs Better Auth's algorithm exactly, in one of two stores (`auth.rate_limit.storage`):
//! [`MemoryStore`], per process like Better Auth's default memory storage, and [`DatabaseStore`],
//! its `rateLimit` table in PostgreSQL, where every auth process counts together. The database
//! store decides in one statement (an upsert whose conflict branch resets or counts under the
//! row lock), so concurrent requests on any number of processes let exactly `max` through; it
//! costs a pooled connection and a round trip per checked request.
//!
//! Layout: this file holds the rule and decision types, the store trait and the middleware;
//! `limiter` decides which rule and bucket a request falls in (trusted proxies, IPv6 /64s),
//! `memory` and `database` are the two stores.

mod database;
mod limiter;
mod memory;

pub use database::DatabaseStore;
pub use limiter::RateLimiter;
pub use memory::MemoryStore;

use crate::auth::AuthState;
use crate::auth::config::{RateLimitConfig, RateLimitStorage};
use crate::db::DbPool;
use crate::platform::error::{PlatformError, render};
use crate::platform::route;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use std::future::Future;
use std::pin::Pin;

pub const RETRY_AFTER_HEADER: &str = "x-retry-after";
/// A shard drops its expired entries once every this many requests it sees.
const PRUNE_EVERY: u32 = 4096;

/// The refusal a limited client sees.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("Too many requests. Please try again later.")]
    TooManyRequests { retry_after_secs: i64 },
}

impl ResponseError for RateLimitError {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        let Self::TooManyRequests { retry_after_secs } = self;
        let mut res = render(self.status_code(), "TOO_MANY_REQUESTS", &self.to_string());
        res.headers_mut().insert(
            HeaderName::from_static(RETRY_AFTER_HEADER),
            HeaderValue::from(*retry_after_secs),
        );
        res
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub window_ms: i64,
    pub max: u32,
}

impl Rule {
    pub fn new(window_secs: u64, max: u32) -> Self {
        let window_ms = i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self { window_ms, max }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after_secs: i64 },
}

/// What a store's decision comes back as (boxed, so the store is a trait object).
pub type Hit<'a> = Pin<Box<dyn Future<Output = Decision> + 'a>>;

/// Where counts live. Async so that a store shared across instances can do IO; such a store
/// chooses its own policy when its backend is down (Better Auth's database storage lets through).
pub trait RateLimitStore: Send + Sync {
    /// Counts one request for `key` at `now_ms` (Unix milliseconds) and decides it.
    fn hit<'a>(&'a self, key: &'a str, rule: Rule, now_ms: i64) -> Hit<'a>;
}

/// The store `auth.rate_limit.storage` names.
pub fn store_for(config: &RateLimitConfig, pool: &DbPool) -> Box<dyn RateLimitStore> {
    match config.storage {
        RateLimitStorage::Memory => Box::new(MemoryStore::new(config.max_entries)),
        RateLimitStorage::Database => {
            let longest = config
                .rules
                .iter()
                .filter_map(|r| r.window_secs)
                .chain([config.window_secs, 60])
                .max()
                .unwrap_or(60);
            Box::new(DatabaseStore::new(
                pool.clone(),
                Rule::new(longest, 1).window_ms,
            ))
        }
    }
}

/// Middleware around the `/api/auth` scope (`from_fn(enforce)`): runs before routing inside the
/// scope, so unknown paths and bodies never parsed count too, as in Better Auth.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AuthState>>().cloned() else {
        tracing::error!("rate limit: AuthState is not in app data");
        return Err(PlatformError::Internal.into());
    };
    let limiter = &state.rate_limiter;
    if limiter.is_enabled() {
        let peer = req.peer_addr().map(|a| a.ip());
        let forwarded_for = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        // The router's reading of the path (decoded), so `%65mail` cannot dodge
        // `/sign-in/email`; `path` is what is left after the scope.
        let (full, path) = (route::routed_path(&req), req.match_info().unprocessed());
        let base = full
            .get(..full.len().saturating_sub(path.len()))
            .unwrap_or("");
        let route = route::matched_pattern(&req);
        let route = route.as_deref().map(|r| r.strip_prefix(base).unwrap_or(r));
        if let Decision::Limited { retry_after_secs } =
            limiter.check(peer, forwarded_for, path, route).await
        {
            // A response, not an `Err`, so CORS still decorates it and browsers can read it.
            let res = RateLimitError::TooManyRequests { retry_after_secs }.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
