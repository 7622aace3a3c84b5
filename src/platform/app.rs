//! The app builder both roles share: JSON limits and JSON errors, CORS, request ids and tracing,
//! health routes. A role adds its routes through one `configure` function.

use crate::platform::config::Config;
use crate::platform::error;
use crate::platform::health;
use crate::platform::state::Platform;
use crate::platform::telemetry::{self, RoleTag, SwitchboardRootSpan};
use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, web};
use tracing_actix_web::TracingLogger;

/// Response headers a browser client may read cross-origin.
pub const EXPOSED_HEADERS: &[&str] = &[
    "set-auth-jwt",
    "x-retry-after",
    telemetry::REQUEST_ID_HEADER,
];

pub fn build_app<F>(
    platform: web::Data<Platform>,
    role: RoleTag,
    configure: F,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
>
where
    F: FnOnce(&mut web::ServiceConfig),
{
    let limit = platform.config.server.json_limit_bytes;
    let cors = cors(&platform.config);
    App::new()
        .app_data(role)
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(error::json_error),
        )
        .app_data(web::PayloadConfig::default().limit(limit))
        .app_data(web::FormConfig::default().limit(limit))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(platform)
        .configure(health::configure)
        .configure(crate::jobs::metrics::configure)
        .configure(configure)
        .default_service(web::to(error::not_found))
        .wrap(ErrorHandlers::new().default_handler(error::ensure_json))
        .wrap(cors)
        .wrap(from_fn(telemetry::request_id_header))
        .wrap(TracingLogger::<SwitchboardRootSpan>::new())
}

/// CORS from `CORS_ORIGINS`: exact origins, credentials allowed. A request from any other origin
/// is served without CORS headers (the browser then withholds the response), not refused here:
/// the auth role's own origin check decides what a cross-origin write may do.
fn cors(config: &Config) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT])
        .expose_headers(EXPOSED_HEADERS.iter().copied())
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(600);
    for origin in &config.server.cors_origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}
