//! `ConnectorsError`: every way a connectors request fails, rendered once through
//! `platform::error::render`. Messages are for people and never carry a token or code.

use crate::connectors::oauth::TokenError;
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
    /// Unknown, used, or someone else's (the code is then destroyed): all look the same.
    #[error("The code is unknown or was already used; connect again")]
    GrantNotFound,
    #[error("The code has expired; connect again")]
    GrantExpired,
    /// A valid token whose user was deleted: the database refuses to attach anything to them.
    #[error("The user this token was issued to no longer exists")]
    OwnerGone,
    #[error("database: {0}")]
    Db(DbError),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
}

/// A provider call's failure, as every caller answers it. (A refresh answers `InvalidGrant`
/// with `NeedsReauth` before it gets here; a revoke never sees it.)
impl From<TokenError> for ConnectorsError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::InvalidGrant => Self::ProviderRejected("invalid_grant".to_owned()),
            TokenError::Rejected(code) => Self::ProviderRejected(code),
            TokenError::Transient(_) => Self::ProviderUnavailable,
            TokenError::Malformed => Self::ProviderMalformed,
        }
    }
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
            Self::GrantNotFound => "GRANT_NOT_FOUND",
            Self::GrantExpired => "GRANT_EXPIRED",
            Self::OwnerGone => "USER_NOT_FOUND",
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
        Self::from(DbError::from(err))
    }
}

impl From<DbError> for ConnectorsError {
    /// The foreign keys a connectors write can violate are `owner_id → "user"` (connections,
    /// oauth_flows, pending_grants; `refresh_claims` is written only with its connection row
    /// locked): a violation means the caller's user was deleted while their JWT is still
    /// valid. That is a clear 403, not a 500.
    fn from(err: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
                Self::OwnerGone
            }
            other => Self::Db(other),
        }
    }
}

impl ConnectorsError {
    /// Whether this is our own failure (not the client's, not the provider's).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Db(_) | Self::Vault(_))
    }

    /// Logs an internal failure with its detail, inside the request's span (which carries the
    /// request id). Called on every path that turns an error into a response: the JSON
    /// renderer and the callback's redirect alike, so no internal error goes unlogged.
    pub fn log(&self) {
        match self {
            Self::Db(DbError::Unavailable(_)) => {
                tracing::warn!(error = %self, "database unavailable");
            }
            Self::Db(_) | Self::Vault(_) => {
                tracing::error!(error = %self, "connectors request failed");
            }
            _ => {}
        }
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
            | Self::GrantExpired
            | Self::AuthorizationDenied(_) => StatusCode::BAD_REQUEST,
            Self::GrantNotFound => StatusCode::NOT_FOUND,
            Self::OwnerGone => StatusCode::FORBIDDEN,
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
        if let Self::Db(err) = self
            && !matches!(err, DbError::NotFound)
        {
            // The one database answer (503/500), logged there.
            return err.error_response();
        }
        // The detail goes to the log (with the request id from the root span), never to the
        // client.
        self.log();
        match self {
            Self::Db(_) | Self::Vault(_) => render(status, self.code(), "Internal server error"),
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
