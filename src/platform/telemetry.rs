//! Logging and request tracing: readable lines in development, JSON in production, and a root
//! span per request that carries the request id, the role and (once known) the user id.

use crate::platform::config::{LogConfig, LogFormat};
use crate::platform::route;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Installs the global subscriber. `RUST_LOG`, when set, already replaced `log.filter` in config.
///
/// `to_stderr`: a server logs to stdout, where its platform collects it; a command whose result
/// is its stdout (`db adopt --print-rollback > rollback.sql`, `jobs list`, `keys list`) logs to
/// stderr, so that a log line never ends up inside the result.
pub fn init(config: &LogConfig, to_stderr: bool) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = if to_stderr {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        BoxMakeWriter::new(std::io::stdout)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
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
        // with secret query values (OAuth codes and states on callbacks) and secret path
        // segments (a reset token) redacted.
        let connection_info = request.connection_info();
        let method = request.method().as_str();
        // The route and the redaction both follow the router's reading of the path, not the
        // raw one (`match_pattern` here, before routing, would test the raw path).
        let pattern = route::matched_pattern(request);
        let route = pattern.clone().unwrap_or_else(|| "default".to_owned());
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
            http.target = %redacted_target(request.uri(), pattern.as_deref()),
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

/// Whether a route's dynamic segment carries a secret, by its name in the route pattern
/// (`/reset-password/{token}`). A new route with a `{…token}` or `{…secret}` segment is redacted
/// without anyone remembering to list it.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "code", "state", "password", "verifier"]
        .iter()
        .any(|s| name.contains(s))
}

const REDACTED: &str = "[redacted]";

/// Path and query of `uri`, with the values of [`SECRET_QUERY_KEYS`] replaced, and the path
/// segments that the matched route `pattern` names as secrets replaced too.
pub fn redacted_target(uri: &actix_web::http::Uri, pattern: Option<&str>) -> String {
    let path = redacted_path(uri.path(), pattern);
    let Some(query) = uri.query() else {
        return path;
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
            // The key as the query parser reads it, so `%74oken=` is `token=` here too.
            let key: String = url::form_urlencoded::parse(raw_key.as_bytes())
                .next()
                .map(|(k, _)| k.to_ascii_lowercase())
                .unwrap_or_default();
            if SECRET_QUERY_KEYS.contains(&key.as_str()) {
                format!("{raw_key}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

fn redacted_path(path: &str, pattern: Option<&str>) -> String {
    let Some(pattern) = pattern else {
        return path.to_owned();
    };
    if !route::pattern_params(pattern).any(is_secret_param) {
        return path.to_owned();
    }
    let (raw, pat): (Vec<&str>, Vec<&str>) =
        (path.split('/').collect(), pattern.split('/').collect());
    let secret_segment =
        |seg: &str| seg.contains('{') && route::pattern_params(seg).any(is_secret_param);
    if raw.len() != pat.len() {
        // A pattern whose segments do not line up with the path (a `{tail:.*}`): log the
        // pattern itself rather than guess which part of the path is the secret.
        return pat
            .iter()
            .map(|seg| if secret_segment(seg) { REDACTED } else { seg })
            .collect::<Vec<_>>()
            .join("/");
    }
    raw.iter()
        .zip(&pat)
        .map(|(seg, p)| if secret_segment(p) { REDACTED } else { seg })
        .collect::<Vec<_>>()
        .join("/")
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
            redacted_target(&uri, Some("/api/connections/{provider}/callback")),
            "/api/connections/linear/callback?code=[redacted]&state=[redacted]&x=1"
        );
        let plain: actix_web::http::Uri = "/api/connections".parse().unwrap();
        assert_eq!(redacted_target(&plain, None), "/api/connections");
        // An encoded key is the same key to the query parser.
        let encoded: actix_web::http::Uri = "/x?%74oken=abc&T%6Fken=d&b=1".parse().unwrap();
        assert_eq!(
            redacted_target(&encoded, None),
            "/x?%74oken=[redacted]&T%6Fken=[redacted]&b=1"
        );
    }

    #[test]
    fn secret_path_segments_are_redacted_by_route() {
        let uri: actix_web::http::Uri = "/api/auth/reset-password/s3cr3t?callbackURL=/x"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_target(&uri, Some("/api/auth/reset-password/{token}")),
            "/api/auth/reset-password/[redacted]?callbackURL=/x"
        );
        let encoded: actix_web::http::Uri = "/api/auth/reset-password/s3%63r3t".parse().unwrap();
        assert_eq!(
            redacted_target(&encoded, Some("/api/auth/reset-password/{token}")),
            "/api/auth/reset-password/[redacted]"
        );
        // Not a secret by name: kept.
        let id: actix_web::http::Uri = "/api/connections/c1".parse().unwrap();
        assert_eq!(
            redacted_target(&id, Some("/api/connections/{id}")),
            "/api/connections/c1"
        );
        // Segments that do not line up: the pattern, with the secret redacted.
        let tail: actix_web::http::Uri = "/t/a/b/c".parse().unwrap();
        assert_eq!(
            redacted_target(&tail, Some("/t/{token:.*}")),
            "/t/[redacted]"
        );
    }
}
