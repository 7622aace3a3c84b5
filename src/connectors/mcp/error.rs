//! `McpError`: every way an MCP request fails, rendered once through `platform::error::render`.
//! Messages never carry a token; a server's own error text is shortened and passed on.

use crate::connectors::ConnectorsError;
use crate::connectors::vault::VaultError;
use crate::db::DbError;
use crate::platform::error::render;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server not found")]
    ServerNotFound,
    #[error("The server has no tool named {0:?}")]
    ToolNotFound(String),
    #[error("{0}")]
    Validation(String),
    #[error("The URL is not allowed: {0}")]
    UrlNotAllowed(String),
    #[error("The arguments do not match the tool's input schema: {0}")]
    InvalidArguments(String),
    #[error("The MCP server requires authorization")]
    NeedsAuthorization,
    /// A 403 `insufficient_scope`: authorize again (the union of the old and these scopes).
    #[error("The MCP server needs more scopes ({0}): authorize the server again")]
    InsufficientScope(String),
    /// Discovery, registration or the token endpoint failed (spec §5.5).
    #[error("The MCP server's authorization cannot proceed: {0}")]
    Authorization(String),
    #[error("The MCP server could not be reached")]
    Unreachable,
    /// The connection closed after the request went out and before any answer, and the message
    /// may not be sent again (a tool call not marked read-only or idempotent).
    #[error(
        "The MCP server closed the connection before answering; the tool may or may not have run, \
         and it was not called again because it is not marked read-only or idempotent"
    )]
    OutcomeUnknown,
    #[error("The MCP server did not answer in time")]
    Timeout,
    #[error("The MCP server's response is larger than allowed")]
    TooLarge,
    #[error("The MCP server does not speak a protocol version we support")]
    UnsupportedServer,
    /// A JSON-RPC error from the server: its code and (shortened) message.
    #[error("The MCP server answered with an error ({0}): {1}")]
    Server(i64, String),
    #[error("The MCP server answered HTTP {0}")]
    Http(u16),
    #[error("The MCP server sent a response we could not use")]
    Malformed,
    #[error("You have reached the limit of MCP servers")]
    TooMany,
    #[error("This MCP server was already added")]
    Duplicate,
    #[error("{0}")]
    Connectors(#[from] ConnectorsError),
    #[error("database: {0}")]
    Db(DbError),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    #[error("internal error")]
    Internal,
}

impl McpError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::ServerNotFound => "MCP_SERVER_NOT_FOUND",
            Self::ToolNotFound(_) => "MCP_TOOL_NOT_FOUND",
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::UrlNotAllowed(_) => "URL_NOT_ALLOWED",
            Self::InvalidArguments(_) => "INVALID_ARGUMENTS",
            Self::NeedsAuthorization => "MCP_AUTHORIZATION_REQUIRED",
            Self::InsufficientScope(_) => "MCP_INSUFFICIENT_SCOPE",
            Self::Authorization(_) => "MCP_AUTHORIZATION_FAILED",
            Self::Unreachable => "MCP_UNREACHABLE",
            Self::OutcomeUnknown => "MCP_CALL_OUTCOME_UNKNOWN",
            Self::Timeout => "MCP_TIMEOUT",
            Self::TooLarge => "MCP_RESULT_TOO_LARGE",
            Self::UnsupportedServer => "MCP_UNSUPPORTED_SERVER",
            Self::Server(..) => "MCP_SERVER_ERROR",
            Self::Http(_) | Self::Malformed => "MCP_BAD_RESPONSE",
            Self::TooMany => "MCP_SERVER_LIMIT",
            Self::Duplicate => "MCP_SERVER_EXISTS",
            Self::Connectors(e) => e.code(),
            Self::Db(DbError::NotFound) => "MCP_SERVER_NOT_FOUND",
            Self::Db(DbError::Unavailable(_)) => "SERVICE_UNAVAILABLE",
            Self::Db(_) | Self::Vault(_) | Self::Internal => "INTERNAL_SERVER_ERROR",
        }
    }

    /// A server's error text, cut to a length a client can show.
    pub fn server(code: i64, message: &str) -> Self {
        let short: String = message.chars().take(300).collect();
        Self::Server(code, short)
    }
}

impl From<DbError> for McpError {
    fn from(err: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
                Self::Connectors(ConnectorsError::OwnerGone)
            }
            DbError::Conflict(_)
            | DbError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Self::Duplicate
            }
            other => Self::Db(other),
        }
    }
}

impl From<diesel::result::Error> for McpError {
    fn from(err: diesel::result::Error) -> Self {
        Self::from(DbError::from(err))
    }
}

impl ResponseError for McpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::ServerNotFound | Self::ToolNotFound(_) | Self::Db(DbError::NotFound) => {
                StatusCode::NOT_FOUND
            }
            Self::Validation(_) | Self::UrlNotAllowed(_) | Self::InvalidArguments(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::NeedsAuthorization | Self::Duplicate | Self::TooMany => StatusCode::CONFLICT,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::Unreachable
            | Self::OutcomeUnknown
            | Self::Authorization(_)
            | Self::TooLarge
            | Self::UnsupportedServer
            | Self::Server(..)
            | Self::Http(_)
            | Self::Malformed => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Connectors(e) => e.status_code(),
            Self::Db(DbError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Db(_) | Self::Vault(_) | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Connectors(e) => e.error_response(),
            Self::Db(DbError::Unavailable(_)) => {
                tracing::warn!(error = %self, "database unavailable");
                render(status, self.code(), "Service temporarily unavailable")
            }
            Self::Db(_) | Self::Vault(_) | Self::Internal => {
                tracing::error!(error = %self, "MCP request failed");
                render(status, self.code(), "Internal server error")
            }
            _ => render(status, self.code(), &self.to_string()),
        }
    }
}
