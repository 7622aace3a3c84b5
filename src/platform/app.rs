//! The app builder both roles share: JSON limits and JSON errors, CORS, request ids and tracing,
//! health routes. A role adds its routes through one `configure` function.

use crate::platform::config::Config;
use crate::platform::error;
use crate::platform::health;
use crate::platform::proxy;
use crate::platform::route;
use crate::platform::state::Platform;
use crate::platform::telemetry::{self, RoleTag, SwitchboardRootSpan};
use actix_cors::Cors;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{ErrorHandlers, Next, from_fn};
use actix_web::{App, web};
use tracing_actix_web::TracingLogger;

/// Response headers a browser client may read cross-origin: each role's own, and the request
/// id every response carries.
fn exposed_headers() -> Vec<&'static str> {
    #[cfg(feature = "auth")]
    let role: &[&str] = crate::auth::EXPOSED_HEADERS;
    #[cfg(not(feature = "auth"))]
    let role: &[&str] = &[];
    role.iter()
        .copied()
        .chain([telemetry::REQUEST_ID_HEADER])
        .collect()
}

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
        .wrap(from_fn(screen_path_and_query))
        .wrap(ErrorHandlers::new().default_handler(error::ensure_json))
        .wrap(cors)
        // Outside CORS: the preflights it refuses get the JSON envelope too.
        .wrap(ErrorHandlers::new().default_handler(error::ensure_json))
        .wrap(from_fn(refuse_unknown_origins))
        .wrap(from_fn(proxy::warn_untrusted_forwarding))
        .wrap(from_fn(no_credentials_for_any_origin))
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
        .expose_headers(exposed_headers())
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
        // The target as the request log writes it: secret path segments and query values
        // (reset tokens, states) redacted.
        target = %telemetry::redacted_target(req.uri(), route::matched_pattern(&req).as_deref()),
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

/// Longest path we route, as the router reads it (decoded).
pub const MAX_PATH_LEN: usize = 2048;
/// Longest single path segment (an id, a provider, a token).
pub const MAX_SEGMENT_LEN: usize = 512;
/// Longest query string, and longest single query value once decoded.
pub const MAX_QUERY_LEN: usize = 8192;
pub const MAX_QUERY_VALUE_LEN: usize = 4096;

/// The screening bodies get (`auth::body`, the JSON extractors), for the path and the query, in
/// front of every route of both roles so that a new route cannot forget it: no NUL (PostgreSQL
/// text cannot hold one, so it would surface as a 500) and no control character in the path,
/// and bounded lengths. Refused with 400 `VALIDATION_ERROR` before any handler or query runs.
async fn screen_path_and_query(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Err(message) = screen(route::routed_path(&req), req.query_string()) {
        let res = error::render(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// `path` is the router's reading (percent-decoded but for `%2F`, `%25`, `%2B`); the path
/// extractor decodes those three too, which can make neither a NUL nor a control character.
pub fn screen(path: &str, query: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "[path] Too big: expected at most {MAX_PATH_LEN} bytes"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err("[path] Invalid input: control characters are not allowed".to_owned());
    }
    if path.split('/').any(|seg| seg.len() > MAX_SEGMENT_LEN) {
        return Err(format!(
            "[path] Too big: expected each segment to have at most {MAX_SEGMENT_LEN} bytes"
        ));
    }
    if query.len() > MAX_QUERY_LEN {
        return Err(format!(
            "[query] Too big: expected at most {MAX_QUERY_LEN} bytes"
        ));
    }
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key.contains('\0') || value.contains('\0') {
            return Err(format!(
                "[query.{}] Invalid input: NUL characters are not allowed",
                key.replace('\0', "")
            ));
        }
        if value.len() > MAX_QUERY_VALUE_LEN {
            return Err(format!(
                "[query.{key}] Too big: expected at most {MAX_QUERY_VALUE_LEN} bytes"
            ));
        }
    }
    Ok(())
}

/// `Access-Control-Allow-Origin: *` is for public documents (the JWKS); a browser refuses it
/// together with `Allow-Credentials: true`, and the pair says something we do not mean. Drop the
/// credentials header whenever a response ends up with the wildcard, whatever set either one.
async fn no_credentials_for_any_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let wildcard = res
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_some_and(|v| v.as_bytes() == b"*");
    if wildcard {
        res.headers_mut()
            .remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn screens_nul_control_and_length() {
        assert!(screen("/api/connections/abc", "force=true").is_ok());
        assert!(screen("/api/connections/\0", "").is_err());
        assert!(screen("/api/x\n", "").is_err());
        assert!(screen("/api/x", "state=%00").is_err());
        assert!(screen("/api/x", "%00=1").is_err());
        assert!(
            screen("/api/x", "a=b%0Ac").is_ok(),
            "a newline in a value is text"
        );
        assert!(screen(&format!("/a/{}", "b".repeat(MAX_SEGMENT_LEN + 1)), "").is_err());
        assert!(screen("/a", &format!("t={}", "b".repeat(MAX_QUERY_VALUE_LEN + 1))).is_err());
        assert!(screen("/a", &"b=1&".repeat(MAX_QUERY_LEN / 4 + 1)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever passes holds no NUL anywhere a query could take it from, and nothing panics.
        #[test]
        fn what_passes_the_screen_holds_no_nul(
            path in "(/|%00|\\x00|\\n|[a-z]|é|%)*",
            query in "([a-z=&%+]|%00|%0|%zz|%C3|\\x00)*",
        ) {
            if screen(&path, &query).is_ok() {
                prop_assert!(!path.chars().any(char::is_control));
                for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                    prop_assert!(!k.contains('\0') && !v.contains('\0'));
                }
            }
        }
    }
}
