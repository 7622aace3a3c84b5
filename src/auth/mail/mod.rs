//! Outgoing mail: the transport config chooses (Resend, or the log in development), the
//! templates, and a durable outbox: a message is a `mail_send` job in PostgreSQL (enqueued in
//! the transaction that writes its token, where there is one) that this role's job workers
//! send, so no response waits on the mail provider and a restart loses nothing.
//!
//! The stored job holds the rendered message sealed (AES-256-GCM, a key derived from
//! `BETTER_AUTH_SECRET` for this purpose only): a reset or verification link is a secret, and
//! the jobs table is read by operators (`switchboard jobs list`). The Resend idempotency key is
//! made once at enqueue and kept in the payload, so every retry of the job reuses it.

mod resend;
mod templates;

pub use templates::escape_html;

pub use resend::{MailError, ResendClient};
pub use templates::Templates;

use crate::auth::config::{AuthConfig, MailTransport};
use crate::crypto::aead::Keyring;
use crate::crypto::random;
use crate::db::{self, DbError, DbPool};
use crate::jobs::{EnqueueOpts, Job, JobError};
use crate::platform::clock::SharedClock;
use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::Instrument;

/// The job kind of one outgoing message.
pub const SEND_KIND: &str = "mail_send";
/// HKDF purpose of the outbox key, and the AAD of every sealed message.
const SEAL_PURPOSE: &str = "switchboard/auth/mail-outbox";

/// One message, ready to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Email {
    /// What it is for (`verification`, `reset-password`, `change-email`): logs and idempotency keys.
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The link the message carries, for the development log.
    pub link: String,
}

#[derive(Clone)]
enum Transport {
    Resend(ResendClient),
    /// Development: the message is logged, not sent.
    Log,
}

/// The payload of a `mail_send` job: nothing readable but the kind and the request id.
#[derive(Serialize, Deserialize)]
struct Queued {
    kind: String,
    /// `{kind}/{random}`, made once: every attempt of every run sends it.
    idempotency_key: String,
    request_id: Option<String>,
    /// The [`Email`] as JSON, sealed.
    sealed: String,
}

/// The mailer every flow uses; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    pub templates: Templates,
    outbox: Arc<Keyring>,
    pool: DbPool,
    clock: SharedClock,
    max_attempts: i32,
    /// Wakes this process's auth job workers after an enqueue committed.
    wake: Arc<Notify>,
}

impl Mailer {
    /// The transport `auth.mail.transport` names: Resend with `RESEND_API_KEY` at
    /// `auth.mail.resend_base_url` (a stand-in in tests), or the log.
    pub fn from_config(
        auth: &AuthConfig,
        pool: DbPool,
        clock: SharedClock,
        max_attempts: i32,
    ) -> anyhow::Result<Self> {
        let mail = &auth.mail;
        let transport = match (
            mail.effective_transport(auth.resend_api_key.as_ref()),
            &auth.resend_api_key,
        ) {
            (MailTransport::Resend, Some(key)) => {
                Transport::Resend(ResendClient::new(mail, key.clone())?)
            }
            (MailTransport::Resend, None) => {
                anyhow::bail!("auth.mail.transport is resend but RESEND_API_KEY is not set")
            }
            _ => Transport::Log,
        };
        Ok(Self {
            transport,
            templates: Templates::new(&mail.product_name),
            outbox: Arc::new(Keyring::derive(
                auth.secret.expose().as_bytes(),
                SEAL_PURPOSE,
            )),
            pool,
            clock,
            max_attempts: max_attempts.max(1),
            wake: Arc::new(Notify::new()),
        })
    }

    /// What the auth role's job runner shares, so a local enqueue starts at once.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Puts `email` in the outbox inside the caller's transaction: it is sent once that
    /// commits, by whichever process's worker claims it. Call [`Mailer::wake`] after the commit.
    pub fn enqueue_in(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        email: &Email,
        request_id: Option<&str>,
    ) -> Result<(), DbError> {
        let plain = serde_json::to_vec(email).map_err(unstorable)?;
        let sealed = self
            .outbox
            .seal(&plain, SEAL_PURPOSE.as_bytes())
            .map_err(unstorable)?;
        let queued = Queued {
            kind: email.kind.clone(),
            idempotency_key: format!("{}/{}", email.kind, random::id()),
            request_id: request_id.map(str::to_owned),
            sealed,
        };
        let payload = serde_json::to_value(&queued).map_err(unstorable)?;
        crate::jobs::enqueue(
            conn,
            now,
            SEND_KIND,
            &payload,
            &EnqueueOpts {
                max_attempts: Some(self.max_attempts),
                ..Default::default()
            },
        )?;
        Ok(())
    }

    /// Tells this process's workers a message was committed to the outbox.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Puts `email` in the outbox from a task of its own and returns at once (for call sites
    /// with no transaction of their own): a slow database or provider never delays the answer.
    pub fn send(&self, email: Email, request_id: Option<String>) {
        let mailer = self.clone();
        tokio::spawn(async move {
            let now = mailer.clock.now();
            let inner = mailer.clone();
            let rid = request_id.clone();
            let queued = db::run(&mailer.pool, move |conn| {
                inner.enqueue_in(conn, now, &email, rid.as_deref())
            })
            .await;
            match queued {
                Ok(()) => mailer.wake(),
                Err(error) => tracing::error!(
                    request_id = request_id.as_deref().unwrap_or("-"),
                    %error,
                    "queueing a mail failed"
                ),
            }
        });
    }

    /// The `mail_send` job: opens the sealed message and hands it to the transport. A refusal
    /// (4xx other than rate limits) is permanent; anything else retries with the same key.
    pub async fn deliver(&self, job: Job) -> Result<(), JobError> {
        let queued: Queued = serde_json::from_value(job.payload)
            .map_err(|e| JobError::permanent(format!("unreadable mail job: {e}")))?;
        let plain = self
            .outbox
            .open(&queued.sealed, SEAL_PURPOSE.as_bytes())
            .map_err(|e| JobError::permanent(format!("cannot open the sealed mail: {e}")))?;
        let email: Email = serde_json::from_slice(&plain)
            .map_err(|e| JobError::permanent(format!("unreadable sealed mail: {e}")))?;
        let request_id = queued.request_id.unwrap_or_else(|| "-".to_owned());
        let span = tracing::info_span!("mail", request_id = %request_id, kind = %queued.kind, job = job.id);
        async move {
            match &self.transport {
                Transport::Log => {
                    tracing::info!(
                        to = %email.to,
                        subject = %email.subject,
                        link = %email.link,
                        "mail not sent (log transport)"
                    );
                    Ok(())
                }
                Transport::Resend(client) => {
                    match client.send(&email, &queued.idempotency_key).await {
                        Ok(id) => {
                            tracing::info!(resend_id = %id, "mail sent");
                            Ok(())
                        }
                        Err(error @ MailError::Rejected { .. }) => {
                            Err(JobError::permanent(error.to_string()))
                        }
                        Err(error) => Err(JobError::retry(error.to_string())),
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// A message that cannot be turned into a job (never expected): the caller's transaction fails.
fn unstorable(e: impl std::error::Error + Send + Sync + 'static) -> DbError {
    DbError::Query(diesel::result::Error::SerializationError(Box::new(e)))
}
