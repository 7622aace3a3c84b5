//! Why a caller's identity could not be established, and the 401/503 each reason becomes. The
//! token itself never appears in a message.

use crate::platform::error::render;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// No `Authorization: Bearer` credentials at all.
    #[error("Authentication required")]
    Missing,
    /// Credentials were sent and are not acceptable; the reason is safe to show.
    #[error("Invalid token: {0}")]
    Invalid(&'static str),
    /// No key set could ever be fetched, so nothing can be verified right now.
    #[error("Token verification keys are unavailable")]
    KeysUnavailable,
    /// The app was built without a verifier: a wiring bug, never the client's fault.
    #[error("Internal server error")]
    NotConfigured,
}

impl ResponseError for TrustError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid(_) => StatusCode::UNAUTHORIZED,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, challenge) = match self {
            Self::Missing => ("UNAUTHORIZED", Some("Bearer")),
            Self::Invalid(_) => ("INVALID_TOKEN", Some("Bearer error=\"invalid_token\"")),
            Self::KeysUnavailable => ("SERVICE_UNAVAILABLE", None),
            Self::NotConfigured => ("INTERNAL_SERVER_ERROR", None),
        };
        let mut res = render(self.status_code(), code, &self.to_string());
        if let Some(challenge) = challenge {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        res
    }
}
