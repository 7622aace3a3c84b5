//! Provider webhooks: `POST /webhooks/linear` and `POST /webhooks/github`. A delivery is read as
//! raw bytes (never through a JSON extractor), verified, and stored by the group-commit writer
//! together with its batch's routing job in one statement before the 200; a redelivery answers
//! 200 and stores nothing. Routing to connections runs later as the `webhook_route` job, one
//! per batch, each run routing every pending delivery (see [`route`]).

pub mod admin;
pub(crate) mod intake;
pub(crate) mod route;
mod verify;
pub mod writer;

use crate::db::DbError;
use crate::platform::error::render;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

pub(crate) use intake::{github, linear};

/// Every `webhooks.prune_interval_secs` (jittered) this process asks for a prune; the dedupe
/// key keeps it to one waiting prune across all processes.
pub(crate) fn spawn_prune_schedule(
    ctx: std::sync::Arc<crate::connectors::Ctx>,
    runtime: &tokio::runtime::Handle,
) {
    runtime.spawn(async move {
        let every = std::time::Duration::from_secs(ctx.config.webhooks.prune_interval_secs.max(1));
        loop {
            tokio::time::sleep(crate::connectors::jitter(every)).await;
            let now = ctx.clock.now();
            let enqueued = crate::db::run(&ctx.pool, move |conn| {
                crate::jobs::enqueue(
                    conn,
                    now,
                    PRUNE_KIND,
                    &serde_json::json!({}),
                    &crate::jobs::EnqueueOpts {
                        dedupe_key: Some(PRUNE_KIND.to_owned()),
                        ..Default::default()
                    },
                )
            })
            .await;
            if let Err(err) = enqueued {
                tracing::warn!(error = %err, "scheduling the events prune failed");
            }
        }
    });
}
pub(crate) use route::{PRUNE_KIND, ROUTE_KIND};

/// Every way a delivery is refused; nothing is stored for any of them.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("Invalid webhook signature")]
    BadSignature,
    #[error("Webhook timestamp is missing or outside the allowed window")]
    Stale,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("Webhook body too large")]
    TooLarge,
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The intake writer could not store it (its batch failed, or shutdown).
    #[error("not stored: {0}")]
    NotStored(String),
}

impl WebhookError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadSignature => "INVALID_SIGNATURE",
            Self::Stale => "STALE_WEBHOOK",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::TooLarge => "PAYLOAD_TOO_LARGE",
            Self::Db(DbError::Unavailable(_)) | Self::NotStored(_) => "SERVICE_UNAVAILABLE",
            Self::Db(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadSignature | Self::Stale => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Db(DbError::Unavailable(_)) | Self::NotStored(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // A 5xx makes the provider retry, which is what we want when we could not commit.
            tracing::error!(error = %self, "webhook delivery not stored");
            return render(
                status,
                self.code(),
                "The delivery could not be stored; retry later",
            );
        }
        render(status, self.code(), &self.to_string())
    }
}
