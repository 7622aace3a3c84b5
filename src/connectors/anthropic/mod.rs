//! A small client of Anthropic's Messages API (spec §4): one streamed call with tools, retried
//! the way the official SDKs retry (429/529/5xx/408/409, `retry-after` honoured up to 60 s,
//! else jittered exponential backoff), never on other 4xx. Sleeps go through [`Sleeper`] so
//! tests never wait. Own code rather than a community crate: the crates on crates.io trail the
//! API version, bring their own HTTP stacks, and none lets us inject the retry sleep.

pub mod sse;

use crate::connectors::config::AnthropicConfig;
use crate::platform::secret::Secret;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use sse::{Assembled, Assembler, Decoder, Delta};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Token counts of one call (or, summed, of a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    pub fn from_json(v: &Value) -> Self {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_creation_input_tokens: n("cache_creation_input_tokens"),
            cache_read_input_tokens: n("cache_read_input_tokens"),
        }
    }

    /// What a token budget counts: everything read and written.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AnthropicError {
    #[error("no Anthropic API key is configured (ANTHROPIC_API_KEY)")]
    NotConfigured,
    /// An HTTP error, or an `error` event inside a 200 stream (`status` then maps its type).
    #[error("Anthropic API error {status} ({kind}): {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
        should_retry: Option<bool>,
    },
    #[error("Anthropic API unreachable: {0}")]
    Transport(String),
    #[error("Anthropic API sent something we could not use: {0}")]
    Malformed(String),
}

impl AnthropicError {
    /// Whether trying the same call again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::NotConfigured => false,
            Self::Api {
                status,
                should_retry,
                ..
            } => should_retry.unwrap_or(matches!(status, 408 | 409 | 429) || *status >= 500),
            // A cut connection or a garbled stream: the next try is a fresh response.
            Self::Transport(_) | Self::Malformed(_) => true,
        }
    }

    pub(crate) fn from_error_event(v: &Value) -> Self {
        let kind = v
            .pointer("/error/type")
            .and_then(Value::as_str)
            .unwrap_or("api_error")
            .to_owned();
        let status = match kind.as_str() {
            "invalid_request_error" => 400,
            "authentication_error" => 401,
            "billing_error" => 402,
            "permission_error" => 403,
            "not_found_error" => 404,
            "conflict_error" => 409,
            "request_too_large" => 413,
            "rate_limit_error" => 429,
            "timeout_error" => 504,
            "overloaded_error" => 529,
            _ => 500,
        };
        Self::Api {
            status,
            kind,
            message: short(
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            request_id: v
                .get("request_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            retry_after: None,
            should_retry: None,
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(500).collect()
}

/// Waits between retries. Production sleeps; tests record and return at once.
pub trait Sleeper: Send + Sync {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// One Messages API call.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub model: String,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
}

/// The assembled answer and what the call cost.
#[derive(Debug, Clone)]
pub struct Response {
    pub message: Assembled,
    pub request_id: Option<String>,
    /// Tries it took (1 = no retry).
    pub attempts: u32,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    version: String,
    key: Option<Secret>,
    max_retries: u32,
    idle: Duration,
    sleeper: Arc<dyn Sleeper>,
}

impl Client {
    pub fn new(config: &AnthropicConfig, key: Option<Secret>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/v1/messages", config.base_url.trim_end_matches('/')),
            version: config.version.clone(),
            key: key.filter(|k| !k.is_empty()),
            max_retries: config.max_retries,
            idle: Duration::from_secs(config.idle_timeout_secs),
            sleeper: Arc::new(TokioSleeper),
        })
    }

    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    pub fn configured(&self) -> bool {
        self.key.is_some()
    }

    /// Streams one call to its end, retrying what may be retried. Text deltas go to `deltas`
    /// as they arrive (a `Retry` first when a try is abandoned).
    pub async fn stream(
        &self,
        req: &Request,
        deltas: Option<&UnboundedSender<Delta>>,
    ) -> Result<Response, AnthropicError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if attempt > 1
                && let Some(tx) = deltas
            {
                let _ = tx.send(Delta::Retry { attempt });
            }
            match self.once(req, deltas).await {
                Ok((message, request_id)) => {
                    tracing::info!(request_id = request_id.as_deref().unwrap_or("-"), model = %req.model,
                        stop_reason = message.stop_reason.as_deref().unwrap_or("-"),
                        input_tokens = message.usage.input_tokens, output_tokens = message.usage.output_tokens,
                        attempt, "Anthropic call");
                    return Ok(Response {
                        message,
                        request_id,
                        attempts: attempt,
                    });
                }
                Err(err) => {
                    let request_id = match &err {
                        AnthropicError::Api { request_id, .. } => request_id.as_deref(),
                        _ => None,
                    };
                    let retry = err.retryable() && attempt <= self.max_retries;
                    tracing::warn!(request_id = request_id.unwrap_or("-"), error = %err, attempt, retry, "Anthropic call failed");
                    if !retry {
                        return Err(err);
                    }
                    let delay = retry_delay(&err, attempt);
                    self.sleeper.sleep(delay).await;
                }
            }
        }
    }

    async fn once(
        &self,
        req: &Request,
        deltas: Option<&UnboundedSender<Delta>>,
    ) -> Result<(Assembled, Option<String>), AnthropicError> {
        let key = self.key.as_ref().ok_or(AnthropicError::NotConfigured)?;
        let mut body = serde_json::to_value(req)
            .map_err(|e| AnthropicError::Malformed(format!("request: {e}")))?;
        body["stream"] = json!(true);
        let res = self
            .http
            .post(&self.url)
            .header("x-api-key", key.expose())
            .header("anthropic-version", &self.version)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .json(&body)
            .send()
            .await
            .map_err(|e| AnthropicError::Transport(transport_reason(&e)))?;
        let status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("request-id");
        if status != 200 {
            let retry_after = header("retry-after-ms")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                .or_else(|| header("retry-after").and_then(|v| parse_retry_after(&v)));
            let should_retry = header("x-should-retry").and_then(|v| match v.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            });
            let text = read_capped(res, 64 * 1024).await;
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(AnthropicError::Api {
                status,
                kind: parsed
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("http_error")
                    .to_owned(),
                message: short(
                    parsed
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no error message"),
                ),
                request_id: request_id.or_else(|| {
                    parsed
                        .get("request_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
                retry_after,
                should_retry,
            });
        }
        let mut res = res;
        let mut decoder = Decoder::default();
        let mut assembler = Assembler::default();
        while !assembler.finished() {
            let chunk = match tokio::time::timeout(self.idle, res.chunk()).await {
                Err(_) => {
                    return Err(AnthropicError::Transport(
                        "the stream went silent past the idle timeout".into(),
                    ));
                }
                Ok(Err(e)) => return Err(AnthropicError::Transport(transport_reason(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            for ev in decoder.push(&chunk) {
                let delta = assembler.feed(&ev).map_err(|e| match e {
                    AnthropicError::Api {
                        status,
                        kind,
                        message,
                        request_id: None,
                        retry_after,
                        should_retry,
                    } => AnthropicError::Api {
                        status,
                        kind,
                        message,
                        request_id: request_id.clone(),
                        retry_after,
                        should_retry,
                    },
                    other => other,
                })?;
                if let (Some(d), Some(tx)) = (delta, deltas) {
                    let _ = tx.send(d);
                }
            }
        }
        Ok((assembler.into_message()?, request_id))
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "the connection failed".into()
    }
}

async fn read_capped(mut res: reqwest::Response, cap: usize) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `retry-after` in seconds or as an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The server's `retry-after` when it is under a minute (as the SDKs do), else
/// `min(0.5 s · 2^(n-1), 8 s)` less up to 25 % jitter.
pub fn retry_delay(err: &AnthropicError, attempt: u32) -> Duration {
    if let AnthropicError::Api {
        retry_after: Some(d),
        ..
    } = err
        && *d < Duration::from_secs(60)
    {
        return *d;
    }
    let exp = attempt.saturating_sub(1).min(10);
    let base = Duration::from_millis(500)
        .saturating_mul(1u32 << exp)
        .min(Duration::from_secs(8));
    use ring::rand::{SecureRandom, SystemRandom};
    let mut byte = [0u8; 1];
    let r = if SystemRandom::new().fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        0.5
    };
    base.mul_f64(1.0 - 0.25 * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy() {
        let api = |status, retry_after, should_retry| AnthropicError::Api {
            status,
            kind: String::new(),
            message: String::new(),
            request_id: None,
            retry_after,
            should_retry,
        };
        for s in [408, 409, 429, 500, 502, 504, 529] {
            assert!(api(s, None, None).retryable(), "{s}");
        }
        for s in [400, 401, 402, 403, 404, 413] {
            assert!(!api(s, None, None).retryable(), "{s}");
        }
        assert!(!api(529, None, Some(false)).retryable());
        assert!(api(400, None, Some(true)).retryable());
        assert_eq!(
            retry_delay(&api(429, Some(Duration::from_secs(7)), None), 1),
            Duration::from_secs(7)
        );
        let long = retry_delay(&api(429, Some(Duration::from_secs(600)), None), 1);
        assert!(long <= Duration::from_millis(500), "{long:?}");
        let third = retry_delay(&api(529, None, None), 3);
        assert!(
            third >= Duration::from_millis(1500) && third <= Duration::from_secs(2),
            "{third:?}"
        );
        assert!(retry_delay(&api(529, None, None), 30) <= Duration::from_secs(8));
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
