//! `ConnectorsError`: every way a connectors request fails, rendered once through
//! `platform::error::render`. Messages are for people and never carry a token or code.

use crate::connectors::vault::VaultError;
use crate::db::DbError;
use crate::platform::error::render;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ConnectorsError {
    #[error("Unknown provider")]
    ProviderNotFound,
    /// A built-in provider whose client id or secret is not set; names the settings.
    #[error("{0}")]
    ProviderNotConfigured(String),
    #[error("Connection not found")]
    ConnectionNotFound,
    #[error("{0}")]
    Validation(String),
    #[error("redirect_to must be on one of the allowed origins (CORS_ORIGINS)")]
    InvalidRedirect,
    #[error("The OAuth state is unknown")]
    InvalidState,
    #[error("The OAuth state has expired; start connecting again")]
    StateExpired,
    #[error("The OAuth state was already used")]
    StateUsed,
    /// The provider's authorize step ended in an error (e.g. `access_denied`); sanitised.
    #[error("The provider did not authorize the connection ({0})")]
    AuthorizationDenied(String),
    #[error("The provider no longer accepts this connection's grant; connect the account again")]
    NeedsReauth,
    /// The provider answered with an OAuth error; its code is safe to show.
    #[error("The provider refused the request ({0})")]
    ProviderRejected(String),
    #[error("The provider could not be reached or failed; try again later")]
    ProviderUnavailable,
    #[error("The provider sent a response we could not use")]
    ProviderMalformed,
    #[error("Refreshing this connection failed recently; retry after {0} s")]
    Backoff(i64),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
}

impl ConnectorsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::ProviderNotFound => "PROVIDER_NOT_FOUND",
            Self::ProviderNotConfigured(_) => "PROVIDER_NOT_CONFIGURED",
            Self::ConnectionNotFound => "CONNECTION_NOT_FOUND",
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::InvalidRedirect => "INVALID_REDIRECT",
            Self::InvalidState => "INVALID_STATE",
            Self::StateExpired => "STATE_EXPIRED",
            Self::StateUsed => "STATE_ALREADY_USED",
            Self::AuthorizationDenied(_) => "AUTHORIZATION_DENIED",
            Self::NeedsReauth => "CONNECTION_NEEDS_REAUTH",
            Self::ProviderRejected(_) => "PROVIDER_ERROR",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::ProviderMalformed => "PROVIDER_BAD_RESPONSE",
            Self::Backoff(_) => "REFRESH_BACKOFF",
            Self::Db(DbError::NotFound) => "CONNECTION_NOT_FOUND",
            Self::Db(DbError::Unavailable(_)) => "SERVICE_UNAVAILABLE",
            Self::Db(_) | Self::Vault(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The `error` a callback redirect carries, in OAuth's lower-case style.
    pub fn redirect_code(&self) -> String {
        match self {
            Self::AuthorizationDenied(code) => code.clone(),
            other => other.code().to_ascii_lowercase(),
        }
    }
}

impl From<diesel::result::Error> for ConnectorsError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Db(DbError::from(err))
    }
}

impl ResponseError for ConnectorsError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::ProviderNotFound | Self::ConnectionNotFound | Self::Db(DbError::NotFound) => {
                StatusCode::NOT_FOUND
            }
            Self::Validation(_)
            | Self::InvalidRedirect
            | Self::InvalidState
            | Self::StateExpired
            | Self::StateUsed
            | Self::AuthorizationDenied(_) => StatusCode::BAD_REQUEST,
            Self::NeedsReauth | Self::ProviderNotConfigured(_) => StatusCode::CONFLICT,
            Self::ProviderRejected(_) | Self::ProviderUnavailable | Self::ProviderMalformed => {
                StatusCode::BAD_GATEWAY
            }
            Self::Backoff(_) | Self::Db(DbError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Db(_) | Self::Vault(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Db(DbError::Unavailable(_)) => {
                tracing::warn!(error = %self, "database unavailable");
                render(status, self.code(), "Service temporarily unavailable")
            }
            Self::Db(_) | Self::Vault(_) => {
                // The detail goes to the log (with the request id from the root span), never
                // to the client.
                tracing::error!(error = %self, "connectors request failed");
                render(status, self.code(), "Internal server error")
            }
            Self::Backoff(secs) => {
                let mut res = render(status, self.code(), &self.to_string());
                if let Ok(value) = secs.to_string().parse() {
                    res.headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
                res
            }
            _ => render(status, self.code(), &self.to_string()),
        }
    }
}
