//! Logging and request tracing: readable lines in development, JSON in production, and a root
//! span per request that carries the request id, the role and (once known) the user id.

use crate::platform::config::{LogConfig, LogFormat};
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
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
        tracing_actix_web::root_span!(request, role = role, user_id = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Records the caller's id on the current request's root span.
pub fn record_user_id(req: &actix_web::HttpRequest, user_id: &str) {
    use actix_web::HttpMessage;
    if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        span.record("user_id", user_id);
    }
}

/// Copies the request id tracing-actix-web generated onto the response, so a client can quote it.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    use actix_web::HttpMessage;
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
