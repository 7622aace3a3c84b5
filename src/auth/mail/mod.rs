//! Outgoing mail: the transport config chooses (Resend, or the log in development), the
//! templates, and sending in the background so no response waits on the mail provider.

mod resend;
mod templates;

pub use resend::ResendClient;
pub use templates::Templates;

use crate::platform::config::{AuthConfig, MailTransport};
use tracing::Instrument;

/// One message, ready to send.
#[derive(Debug, Clone)]
pub struct Email {
    /// What it is for (`verification`, `reset-password`, `change-email`): logs and idempotency keys.
    pub kind: &'static str,
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

/// The mailer every flow uses; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    pub templates: Templates,
}

impl Mailer {
    /// The transport `auth.mail.transport` names: Resend with `RESEND_API_KEY` at
    /// `auth.mail.resend_base_url` (a stand-in in tests), or the log.
    pub fn from_config(auth: &AuthConfig) -> anyhow::Result<Self> {
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
        })
    }

    /// Sends `email` in a task of its own and returns at once: a slow or failing provider never
    /// delays or changes the answer to the request. Failures are logged with `request_id`.
    pub fn send(&self, email: Email, request_id: Option<String>) {
        let transport = self.transport.clone();
        let request_id = request_id.unwrap_or_else(|| "-".to_owned());
        let span = tracing::info_span!("mail", request_id = %request_id, kind = email.kind);
        tokio::spawn(
            async move {
                match transport {
                    Transport::Log => tracing::info!(
                        to = %email.to,
                        subject = %email.subject,
                        link = %email.link,
                        "mail not sent (log transport)"
                    ),
                    Transport::Resend(client) => match client.send(&email).await {
                        Ok(id) => tracing::info!(resend_id = %id, "mail sent"),
                        Err(error) => tracing::error!(
                            request_id = %request_id,
                            to = %email.to,
                            error = %error,
                            "sending mail failed"
                        ),
                    },
                }
            }
            .instrument(span),
        );
    }
}
