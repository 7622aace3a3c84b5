//! The auth role: Better Auth-compatible accounts, sessions and cookies, served under
//! `/api/auth`. Everything in it is private but its state and `configure`.

mod rate_limit;

use crate::platform::openapi;
use crate::platform::state::Platform;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// What the auth role's handlers share.
pub struct AuthState {
    document: utoipa::openapi::OpenApi,
    /// Read by the `rate_limit::enforce` middleware.
    rate_limiter: rate_limit::RateLimiter,
}

impl AuthState {
    pub fn new(platform: &Platform) -> anyhow::Result<Self> {
        let config = &platform.config;
        Ok(Self {
            document: openapi::document(AuthApi::openapi(), "switchboard auth"),
            rate_limiter: rate_limit::RateLimiter::new(
                &config.auth.rate_limit,
                config.app_env,
                platform.clock.clone(),
                Box::new(rate_limit::MemoryStore::new(
                    config.auth.rate_limit.max_entries,
                )),
            )?,
        })
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .service(
            web::scope("/api/auth")
                .wrap(from_fn(rate_limit::enforce))
                .route("/ok", web::get().to(ok)),
        );
}

#[derive(OpenApi)]
#[openapi(paths(ok), components(schemas(OkBody)))]
struct AuthApi;

async fn openapi_json(state: web::Data<AuthState>) -> HttpResponse {
    openapi::respond(&state.document)
}

#[derive(Serialize, ToSchema)]
struct OkBody {
    ok: bool,
}

/// Better Auth's liveness probe of the auth API.
#[utoipa::path(get, path = "/api/auth/ok", tag = "auth",
    responses((status = 200, description = "The auth API answers", body = OkBody)))]
async fn ok() -> HttpResponse {
    HttpResponse::Ok().json(OkBody { ok: true })
}
