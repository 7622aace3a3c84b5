//! `/healthz` (the process answers) and `/readyz` (the database answers), on every listener.

use crate::db::{self, DbError};
use crate::platform::error::{ErrorBody, render};
use crate::platform::state::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use diesel::RunQueryDsl;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` or `ready`.
    pub status: &'static str,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources (not bare routes) so a wrong method is a 405, not a 404.
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers", body = HealthBody)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthBody { status: "ok" })
}

/// The database answers a ping within the pool's connect timeout.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = HealthBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody)))]
pub async fn readyz(platform: web::Data<Platform>) -> HttpResponse {
    let ping = db::run(&platform.pool, |conn| {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map_err(DbError::from)
    })
    .await;
    match ping {
        Ok(_) => HttpResponse::Ok().json(HealthBody { status: "ready" }),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                "The database is unreachable",
            )
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz), components(schemas(HealthBody, ErrorBody)))]
pub struct HealthApi;
