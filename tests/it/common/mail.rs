//! A Resend stand-in on 127.0.0.1 (wiremock) that keeps every email it is sent, so a test can
//! open the message and follow its link as the user would.

use super::app::TestApp;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const API_KEY: &str = "re_test_0123456789";
/// The auth role's public origin in `config/test.toml` (`BETTER_AUTH_URL`).
pub const BASE: &str = "http://localhost:5001";

/// Job workers on, for the mail outbox only (other kinds stay off; tests drain them by hand).
pub const OUTBOX_WORKERS: &[(&str, &str)] = &[
    ("SWITCHBOARD__JOBS__ENABLED", "true"),
    ("SWITCHBOARD__JOBS__POLL_INTERVAL_MS", "20"),
    ("SWITCHBOARD__JOBS__DEFAULT_CONCURRENCY", "0"),
    ("SWITCHBOARD__JOBS__CONCURRENCY__MAIL_SEND", "4"),
];

pub struct ResendStandIn {
    pub server: MockServer,
}

impl ResendStandIn {
    /// Accepts every email with `200 {"id": …}`.
    pub async fn start() -> Self {
        let stand_in = Self::bare().await;
        Mock::given(method("POST"))
            .and(path("/emails"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"})),
            )
            .mount(&stand_in.server)
            .await;
        stand_in
    }

    /// No mocks mounted: the test mounts its own (wiremock answers 404 to anything else).
    pub async fn bare() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    /// A test app whose mail goes to this stand-in, with `env` on top (its outbox workers run:
    /// see [`TestApp::with_env`]).
    pub fn app(&self, env: &[(&str, &str)]) -> TestApp {
        let uri = self.server.uri();
        let mut all: Vec<(&str, &str)> = vec![
            ("RESEND_API_KEY", API_KEY),
            ("SWITCHBOARD__AUTH__MAIL__RESEND_BASE_URL", &uri),
        ];
        all.extend_from_slice(env);
        TestApp::with_env(&all)
    }

    /// Every request made to `/emails` so far, oldest first.
    pub async fn requests(&self) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == "/emails")
            .collect()
    }

    /// The JSON bodies of every request to `/emails` so far.
    pub async fn emails(&self) -> Vec<Value> {
        self.requests()
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("Resend request body is JSON"))
            .collect()
    }

    /// Waits (mail is sent in the background) until `n` requests have arrived; fails after 10 s.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let emails = self.emails().await;
            if emails.len() >= n {
                return emails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} emails, got {}: {emails:#?}",
                emails.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The emails sent to `to` once at least `n` emails in all, one of them to `to`, have
    /// arrived (the outbox's workers send in the background); fails after 10 s.
    pub async fn mail_to(&self, to: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mine: Vec<Value> = self
                .wait_for(n)
                .await
                .into_iter()
                .filter(|m| m["to"] == json!([to]))
                .collect();
            if !mine.is_empty() {
                return mine;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no email to {to} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The link in an email's plain-text body (the line that starts with `http`).
pub fn link_in(email: &Value) -> String {
    email["text"]
        .as_str()
        .expect("email has a text part")
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {email:#}"))
        .to_owned()
}

/// The path-and-query of a link to the auth role, to send through `TestApp`.
pub fn path_of(link: &str) -> String {
    link.strip_prefix(BASE)
        .unwrap_or_else(|| panic!("{link} is not on {BASE}"))
        .to_owned()
}
