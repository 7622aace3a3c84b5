//! Mail: which way it leaves the process, and Better Auth's `emailVerification` and
//! password-reset options.

use crate::platform::config::{Config, http_url};
use crate::platform::secret::Secret;
use serde::Deserialize;

/// Which way mail leaves the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Resend when `RESEND_API_KEY` is set, else the log.
    Auto,
    Resend,
    /// Development: log the recipient, subject and link; send nothing.
    Log,
}

/// How mail is sent and what it says about who sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// Named in subjects and bodies.
    pub product_name: String,
    /// `Name <address>` on a domain verified with Resend.
    pub from: String,
    pub reply_to: Option<String>,
    pub resend_base_url: String,
    pub connect_timeout_ms: u64,
    /// Bound on one attempt, response included.
    pub timeout_ms: u64,
    /// Retries after the first attempt, on 429 (not quota), 5xx, timeouts and connect errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry. A `retry-after` header wins, capped at 10 s.
    pub retry_backoff_ms: u64,
}

impl MailConfig {
    /// The transport `auto` resolves to for this key.
    pub fn effective_transport(&self, api_key: Option<&Secret>) -> MailTransport {
        match self.transport {
            MailTransport::Auto if api_key.is_some_and(|k| !k.is_empty()) => MailTransport::Resend,
            MailTransport::Auto => MailTransport::Log,
            other => other,
        }
    }
}

/// Better Auth's `emailVerification` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailVerificationConfig {
    /// Whether a `sendVerificationEmail` hook exists: off answers `VERIFICATION_EMAIL_NOT_ENABLED`.
    pub enabled: bool,
    /// Unset follows `email_and_password.require_email_verification` (Better Auth's default).
    pub send_on_sign_up: Option<bool>,
    pub send_on_sign_in: bool,
    pub auto_sign_in_after_verification: bool,
    pub expires_in_secs: i64,
    /// `send-verification-email` without a session answers no sooner than this, so its timing
    /// does not tell who has an account.
    pub anonymous_min_response_ms: u64,
}

/// Better Auth's password-reset options (`sendResetPassword` and friends).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfig {
    /// Whether a `sendResetPassword` hook exists: off answers `RESET_PASSWORD_DISABLED`.
    pub enabled: bool,
    pub token_expires_in_secs: i64,
    pub revoke_sessions_on_reset: bool,
}

impl Config {
    pub(super) fn validate_mail(&self, problems: &mut Vec<String>, production: bool) {
        let auth = &self.auth;
        let mail = &auth.mail;
        let transport = mail.effective_transport(auth.resend_api_key.as_ref());
        let has_key = auth.resend_api_key.as_ref().is_some_and(|k| !k.is_empty());
        if mail.transport == MailTransport::Resend && !has_key {
            problems.push("auth.mail.transport is resend but RESEND_API_KEY is not set".to_owned());
        }
        if production && auth.sends_mail() && transport != MailTransport::Resend {
            problems.push(
                "RESEND_API_KEY must be set in production while email verification or password \
                 reset is enabled (or turn both off: auth.email_verification.enabled = false and \
                 auth.password_reset.enabled = false, i.e. SWITCHBOARD__AUTH__EMAIL_VERIFICATION__ENABLED=false \
                 and SWITCHBOARD__AUTH__PASSWORD_RESET__ENABLED=false)"
                    .to_owned(),
            );
        }
        if let Err(why) = http_url(&mail.resend_base_url) {
            problems.push(format!("auth.mail.resend_base_url {why}"));
        }
        if !is_mailbox(&mail.from) {
            problems.push(format!(
                "auth.mail.from must be an address or `Name <address>` (got {:?})",
                mail.from
            ));
        }
        if let Some(reply_to) = &mail.reply_to
            && !is_mailbox(reply_to)
        {
            problems.push(format!(
                "auth.mail.reply_to must be an address or `Name <address>` (got {reply_to:?})"
            ));
        }
        if mail.product_name.trim().is_empty() {
            problems.push("auth.mail.product_name must not be empty".to_owned());
        }
        if mail.timeout_ms == 0 || mail.connect_timeout_ms == 0 {
            problems.push("auth.mail: timeouts must be positive".to_owned());
        }
        if auth.email_verification.expires_in_secs <= 0
            || auth.password_reset.token_expires_in_secs <= 0
        {
            problems.push(
                "auth.email_verification.expires_in_secs and \
                 auth.password_reset.token_expires_in_secs must be positive"
                    .to_owned(),
            );
        }
    }
}

fn is_mailbox(value: &str) -> bool {
    let value = value.trim();
    let addr = match (value.rfind('<'), value.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => value,
        _ => return false,
    };
    matches!(addr.split_once('@'), Some((local, host)) if !local.is_empty() && host.contains('.') && !addr.contains(char::is_whitespace))
}
