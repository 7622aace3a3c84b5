//! Logging and request tracing: readable lines in development, JSON in production, and a root
//! span per request that carries the request id, the role and (once known) the user id.

use crate::platform::config::{LogConfig, LogFormat};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Installs the global subscriber. `RUST_LOG`, when set, already replaced `log.filter` in config.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Which role's app served a request; stored as app data so the root span can name it.
#[derive(Debug, Clone, Copy)]
pub struct RoleTag(pub &'static str);

/// Root span with the role and an empty `user_id` that identity extractors fill in.
pub struct SwitchboardRootSpan;

impl RootSpanBuilder for SwitchboardRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let role = request
            .app_data::<RoleTag>()
            .map(|r| r.0)
            .unwrap_or("unknown");
        // The fields of `tracing_actix_web::root_span!`, except that `http.target` is written
        // with secret query values (OAuth codes and states on callbacks) redacted.
        let connection_info = request.connection_info();
        let method = request.method().as_str();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "default".to_owned());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let user_agent = request
            .headers()
            .get("User-Agent")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let version = format!("{:?}", request.version());
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.flavor = %version.trim_start_matches("HTTP/"),
            http.scheme = %connection_info.scheme(),
            http.host = %connection_info.host(),
            http.client_ip = %connection_info.realip_remote_addr().unwrap_or(""),
            http.user_agent = %user_agent,
            http.target = %redacted_target(request.uri()),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            role = role,
            user_id = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Query parameters whose values are secrets: OAuth codes and states, tokens, verifiers.
const SECRET_QUERY_KEYS: &[&str] = &[
    "code",
    "state",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "code_verifier",
    "client_secret",
];

/// Path and query of `uri`, with the values of [`SECRET_QUERY_KEYS`] replaced.
pub fn redacted_target(uri: &actix_web::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_QUERY_KEYS.contains(&key.to_ascii_lowercase().as_str()) => {
                format!("{key}=[redacted]")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Records the caller's id on the current request's root span.
pub fn record_user_id(req: &actix_web::HttpRequest, user_id: &str) {
    if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        span.record("user_id", user_id);
    }
}

/// Copies the request id tracing-actix-web generated onto the response, so a client can quote it.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_redacted() {
        let uri: actix_web::http::Uri = "/api/connections/linear/callback?code=abc&state=xyz&x=1"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_target(&uri),
            "/api/connections/linear/callback?code=[redacted]&state=[redacted]&x=1"
        );
        let plain: actix_web::http::Uri = "/api/connections".parse().unwrap();
        assert_eq!(redacted_target(&plain), "/api/connections");
    }
}
