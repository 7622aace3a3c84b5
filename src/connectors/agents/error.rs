//! `AgentsError`: every way an agent-run request fails, rendered once through
//! `platform::error::render`.

use crate::connectors::ConnectorsError;
use crate::db::DbError;
use crate::platform::error::render;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("Agent run not found")]
    RunNotFound,
    #[error("{0}")]
    Validation(String),
    #[error("Agent runs are not configured on this server (ANTHROPIC_API_KEY)")]
    NotConfigured,
    /// Too many runs queued or running; retry after the given seconds.
    #[error("You have too many agent runs in progress; wait for one to finish")]
    TooManyActive(u64),
    /// The hourly allowance is used up until the given seconds pass.
    #[error("You have started too many agent runs this hour")]
    RateLimited(u64),
    #[error("The run has already finished")]
    AlreadyFinished,
    #[error("{0}")]
    Connectors(ConnectorsError),
}

impl From<DbError> for AgentsError {
    fn from(err: DbError) -> Self {
        Self::Connectors(ConnectorsError::from(err))
    }
}

impl From<diesel::result::Error> for AgentsError {
    fn from(err: diesel::result::Error) -> Self {
        Self::from(DbError::from(err))
    }
}

impl AgentsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::RunNotFound => "AGENT_RUN_NOT_FOUND",
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::NotConfigured => "AGENTS_NOT_CONFIGURED",
            Self::TooManyActive(_) => "TOO_MANY_ACTIVE_RUNS",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::AlreadyFinished => "AGENT_RUN_FINISHED",
            Self::Connectors(e) => e.code(),
        }
    }
}

impl ResponseError for AgentsError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::RunNotFound => StatusCode::NOT_FOUND,
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyActive(_) | Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::AlreadyFinished => StatusCode::CONFLICT,
            Self::Connectors(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Connectors(e) => e.error_response(),
            Self::TooManyActive(secs) | Self::RateLimited(secs) => {
                let mut res = render(self.status_code(), self.code(), &self.to_string());
                if let Ok(v) = secs.to_string().parse() {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                res
            }
            _ => render(self.status_code(), self.code(), &self.to_string()),
        }
    }
}
