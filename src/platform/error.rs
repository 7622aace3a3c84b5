//! The one place a wire error becomes an HTTP response: the JSON envelope `{ "code", "message" }`
//! for every error, ours and actix's own (bad JSON, unknown route, wrong method, body too large).

use crate::db::DbError;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error as actix_error};
use serde::Serialize;
use utoipa::ToSchema;

/// The error body every endpoint sends. The same keys Better Auth uses, so its client reads
/// `error.code` unchanged.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable, UPPER_SNAKE_CASE.
    pub code: String,
    /// For people; never carries a secret or an internal detail.
    pub message: String,
}

/// Renders the envelope. Every module's `ResponseError` calls this.
pub fn render(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
        })
}

/// Errors of the platform itself (routing, extraction, infrastructure).
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("Not found")]
    NotFound,
    #[error("Invalid JSON in request body")]
    BadJson,
    #[error("{0}")]
    Validation(String),
    #[error("Request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Service temporarily unavailable")]
    Unavailable,
    #[error("Internal server error")]
    Internal,
}

impl PlatformError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "NOT_FOUND",
            Self::BadJson => "BAD_REQUEST",
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Unavailable => "SERVICE_UNAVAILABLE",
            Self::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl ResponseError for PlatformError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadJson | Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        render(self.status_code(), self.code(), &self.to_string())
    }
}

/// The one answer to a database failure, for every role: unavailable (pool exhausted, server
/// down) is a 503, a missing row a 404, anything else a 500. The detail goes to the log once,
/// inside the request's span (which carries the request id), never to the client.
impl ResponseError for DbError {
    fn status_code(&self) -> StatusCode {
        match self {
            DbError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DbError::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let error = PlatformError::from(self);
        match &error {
            PlatformError::Unavailable => tracing::warn!(error = %self, "database unavailable"),
            PlatformError::Internal => tracing::error!(error = %self, "unexpected database error"),
            _ => {}
        }
        error.error_response()
    }
}

impl From<&DbError> for PlatformError {
    fn from(err: &DbError) -> Self {
        match err {
            DbError::NotFound => Self::NotFound,
            DbError::Unavailable(_) => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

/// `JsonConfig::error_handler`: malformed JSON, wrong shapes, wrong content type, too large.
pub fn json_error(err: actix_error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_error::JsonPayloadError as E;
    let mapped = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => PlatformError::PayloadTooLarge,
        E::ContentType => PlatformError::UnsupportedMediaType(
            "Content-Type is not allowed. Allowed types: application/json".to_owned(),
        ),
        E::Deserialize(e) if e.is_data() => PlatformError::Validation(format!("[body] {e}")),
        E::Deserialize(_) | E::Serialize(_) => PlatformError::BadJson,
        E::Payload(actix_error::PayloadError::Overflow) => PlatformError::PayloadTooLarge,
        _ => PlatformError::BadJson,
    };
    mapped.into()
}

/// `QueryConfig::error_handler`.
pub fn query_error(err: actix_error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    PlatformError::Validation(format!("[query] {err}")).into()
}

/// `PathConfig::error_handler`.
pub fn path_error(err: actix_error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let _ = err;
    PlatformError::NotFound.into()
}

/// The app's default service: an unknown route is a JSON 404.
pub async fn not_found() -> HttpResponse {
    PlatformError::NotFound.error_response()
}

/// `ErrorHandlers` default: any error response that is not already JSON (actix's own 404, 405,
/// 413, …) gets the envelope, keeping its status and headers.
pub fn ensure_json<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
        StatusCode::BAD_REQUEST => ("BAD_REQUEST", "Bad request"),
        StatusCode::SERVICE_UNAVAILABLE => {
            ("SERVICE_UNAVAILABLE", "Service temporarily unavailable")
        }
        s if s.is_server_error() => ("INTERNAL_SERVER_ERROR", "Internal server error"),
        s => ("ERROR", s.canonical_reason().unwrap_or("Request failed")),
    };
    let (req, old) = res.into_parts();
    let mut fresh = render(status, code, message);
    let headers = fresh.headers_mut();
    for (name, value) in old.headers() {
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue;
        }
        if name != header::SET_COOKIE {
            headers.remove(name);
        }
        headers.append(name.clone(), value.clone());
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, fresh).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
