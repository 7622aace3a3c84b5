//! The app builder both roles share: JSON limits and JSON errors, CORS, request ids and tracing,
//! health routes. A role adds its routes through one `configure` function.

use crate::platform::config::Config;
use crate::platform::error;
use crate::platform::health;
use crate::platform::proxy;
use crate::platform::state::Platform;
use crate::platform::telemetry::{self, RoleTag, SwitchboardRootSpan};
use actix_cors::Cors;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{ErrorHandlers, Next, from_fn};
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
        .configure(configure)
        .default_service(web::to(error::not_found))
        .wrap(ErrorHandlers::new().default_handler(error::ensure_json))
        .wrap(cors)
        // Outside CORS: the preflights it refuses get the JSON envelope too.
        .wrap(ErrorHandlers::new().default_handler(error::ensure_json))
        .wrap(from_fn(refuse_unknown_origins))
        .wrap(from_fn(proxy::warn_untrusted_forwarding))
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

/// The origins `CORS_ORIGINS` admits, as the browser sends them.
fn cors_admits(config: &Config, origin: &str) -> bool {
    config
        .server
        .cors_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin)
}

/// Says in the log, at WARN, which setting would admit an origin CORS does not, and answers a
/// refused preflight with the JSON envelope (actix-cors would send plain text). A non-preflight
/// request from such an origin is still served (the browser withholds the response); the auth
/// role's own origin check decides what a write may do, and logs its refusals itself.
async fn refuse_unknown_origins(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, actix_web::Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let same_origin = origin.as_deref().is_some_and(|o| {
        let info = req.connection_info();
        o == format!("{}://{}", info.scheme(), info.host())
    });
    let refused = match (&origin, req.app_data::<web::Data<Platform>>()) {
        (Some(origin), Some(platform))
            if !same_origin && !cors_admits(&platform.config, origin) =>
        {
            Some(origin.clone())
        }
        _ => None,
    };
    let Some(origin) = refused else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let role = req.app_data::<RoleTag>().map(|r| r.0).unwrap_or("unknown");
    tracing::warn!(
        %origin,
        role,
        path = %req.path(),
        preflight,
        "cross-origin request from an origin not in CORS_ORIGINS: the browser will not let the \
         page read the answer; add the origin to CORS_ORIGINS to admit it"
    );
    if !preflight {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    }
    let response = error::render(
        StatusCode::FORBIDDEN,
        "CORS_ORIGIN_NOT_ALLOWED",
        &format!("Origin {origin} is not allowed; the server's CORS_ORIGINS must list it"),
    );
    Ok(req.into_response(response).map_into_left_body())
}
