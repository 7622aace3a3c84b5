//! The Resend client (connectors-protocols §6): `POST {base}/emails` with the bearer key, one
//! `Idempotency-Key` for every attempt of a message, bounded retries with backoff on 429 (not
//! quota), 5xx, 409 concurrent-idempotent and network failures; short timeouts on each attempt.

use super::Email;
use crate::auth::config::MailConfig;
use crate::platform::secret::Secret;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Longest wait between attempts, whatever `retry-after` asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Resend refused the message; retrying would not help.
    #[error("Resend refused the message: {status} {name}: {message}")]
    Rejected {
        status: u16,
        name: String,
        message: String,
    },
    #[error("gave up after {attempts} attempts; last: {last}")]
    GaveUp { attempts: u32, last: String },
}

#[derive(Clone)]
pub struct ResendClient {
    http: reqwest::Client,
    endpoint: String,
    api_key: Secret,
    from: String,
    reply_to: Option<String>,
    max_retries: u32,
    backoff: Duration,
}

#[derive(Deserialize, Default)]
struct ResendErrorBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Sent {
    id: String,
}

/// One attempt's outcome when it did not succeed.
enum Failure {
    Final(MailError),
    Retry {
        after: Option<Duration>,
        what: String,
    },
}

impl ResendClient {
    pub fn new(config: &MailConfig, api_key: Secret) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            endpoint: format!("{}/emails", config.resend_base_url.trim_end_matches('/')),
            api_key,
            from: config.from.clone(),
            reply_to: config.reply_to.clone(),
            max_retries: config.max_retries,
            backoff: Duration::from_millis(config.retry_backoff_ms),
        })
    }

    /// Sends one message under `idempotency_key` (the outbox keeps it per message, so every
    /// attempt of every run of its job reuses it); returns Resend's id for it.
    pub async fn send(&self, email: &Email, idempotency_key: &str) -> Result<String, MailError> {
        let mut body = json!({
            "from": self.from,
            "to": [email.to],
            "subject": email.subject,
            "html": email.html,
            "text": email.text,
        });
        if let Some(reply_to) = &self.reply_to {
            body["reply_to"] = json!(reply_to);
        }
        // Resend keeps the key 24 h: a retry of a send that did go through is not sent twice.
        let mut last = String::new();
        for attempt in 0..=self.max_retries {
            match self.attempt(&body, idempotency_key).await {
                Ok(id) => return Ok(id),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Retry { after, what }) => {
                    tracing::warn!(attempt = attempt + 1, problem = %what, "Resend attempt failed");
                    last = what;
                    if attempt < self.max_retries {
                        let backoff = self.backoff.saturating_mul(1 << attempt.min(16));
                        tokio::time::sleep(after.unwrap_or(backoff).min(MAX_BACKOFF)).await;
                    }
                }
            }
        }
        Err(MailError::GaveUp {
            attempts: self.max_retries + 1,
            last,
        })
    }

    async fn attempt(&self, body: &serde_json::Value, key: &str) -> Result<String, Failure> {
        let response = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.api_key.expose())
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .map_err(|e| Failure::Retry {
                after: None,
                // Without the URL: nothing of the request but its kind of failure is logged.
                what: e.without_url().to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            return match response.json::<Sent>().await {
                Ok(sent) => Ok(sent.id),
                // Accepted, even if the answer is odd: sending again would duplicate the mail.
                Err(_) => Ok(String::from("(unreadable id)")),
            };
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let error: ResendErrorBody = response.json().await.unwrap_or_default();
        let retryable = match status {
            StatusCode::TOO_MANY_REQUESTS => !error.name.ends_with("_quota_exceeded"),
            StatusCode::CONFLICT => error.name == "concurrent_idempotent_requests",
            s => s.is_server_error(),
        };
        if retryable {
            Err(Failure::Retry {
                after: retry_after,
                what: format!("{} {}", status.as_u16(), error.name),
            })
        } else {
            Err(Failure::Final(MailError::Rejected {
                status: status.as_u16(),
                name: error.name,
                message: error.message,
            }))
        }
    }
}
