//! One JSON-RPC message over Streamable HTTP: a POST whose answer is JSON or an SSE stream,
//! read with a size cap, under a whole-call timeout. Dropping the future drops the connection,
//! which is how a modern-era request is cancelled.

use super::error::McpError;
use crate::connectors::vault::Plain;
use crate::platform::ssrf;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::Duration;
use url::Url;

pub const ACCEPT: &str = "application/json, text/event-stream";

tokio::task_local! {
    /// Time spent waiting on MCP servers within [`upstream_timed`]: from sending each POST to
    /// having its answer (what `Server-Timing: upstream` reports).
    static UPSTREAM: std::cell::Cell<Duration>;
}

/// Runs `fut`, returning its output and the time its MCP POSTs took, end to end.
pub async fn upstream_timed<F: std::future::Future>(fut: F) -> (F::Output, Duration) {
    UPSTREAM
        .scope(std::cell::Cell::new(Duration::ZERO), async {
            let out = fut.await;
            (out, UPSTREAM.with(std::cell::Cell::get))
        })
        .await
}

/// What the server answered to one POST.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The JSON-RPC response whose `id` matches ours (or the only JSON object of a JSON body);
    /// `None` for 202 and empty bodies.
    pub message: Option<Value>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON-RPC error code, if the message is an error.
    pub fn error_code(&self) -> Option<i64> {
        self.message
            .as_ref()
            .and_then(|m| m.get("error"))
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64)
    }
}

pub struct Limits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// A header value as the modern era wants it: as-is when header-safe (visible ASCII and inner
/// spaces), otherwise `=?base64?<b64 of UTF-8>?=`.
pub fn header_safe(value: &str) -> String {
    let safe = !value.is_empty()
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with("=?");
    if safe {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// POSTs one JSON-RPC message. When the connection fails before any byte of an answer in the
/// way a kept-alive connection the server had already closed fails (hyper's "connection closed
/// before message completed", or a request it cancelled before sending), a `replayable`
/// message is sent once more on a fresh connection. That race is common right after a server
/// restart. A message that is not replayable (a tool call the tool does not mark read-only or
/// idempotent) is not resent: the server may have read it before it went away, and the caller
/// gets [`McpError::OutcomeUnknown`].
pub async fn post(
    http: &reqwest::Client,
    url: &Url,
    bearer: Option<&Plain>,
    headers: &[(String, String)],
    body: &Value,
    limits: &Limits,
    replayable: bool,
) -> Result<Reply, McpError> {
    let want_id = body.get("id").cloned();
    let bytes = serde_json::to_vec(body).map_err(|_| McpError::Internal)?;
    let mut extra = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(McpError::Internal);
        };
        extra.append(n, v);
    }
    let fut = async {
        let mut resent = false;
        loop {
            let sent = std::time::Instant::now();
            let result = attempt(http, url, bearer, &extra, bytes.clone()).await;
            let reply = match result {
                Ok(resp) => read(resp, want_id.as_ref(), limits.max_bytes).await,
                Err(err) if !resent && closed_before_answer(&err) => {
                    let _ = UPSTREAM.try_with(|t| t.set(t.get() + sent.elapsed()));
                    if !replayable {
                        // Written and unanswered: the server may have acted on it. Not sent
                        // again, and the caller is told it cannot know (not "unreachable").
                        tracing::warn!(error = %err, "MCP connection closed before an answer; a call that is not idempotent is not sent again");
                        return Err(if sent_unanswered(&err) {
                            McpError::OutcomeUnknown
                        } else {
                            McpError::Unreachable
                        });
                    }
                    tracing::debug!(error = %err, "MCP connection closed before an answer; sending again");
                    resent = true;
                    continue;
                }
                Err(err) => Err(send_error(err)),
            };
            let _ = UPSTREAM.try_with(|t| t.set(t.get() + sent.elapsed()));
            return reply;
        }
    };
    tokio::time::timeout(limits.timeout, fut)
        .await
        .map_err(|_| McpError::Timeout)?
}

/// A kept-alive connection the server had closed: hyper wrote the request (or was about to)
/// and read the end of the stream before any byte of a response.
fn closed_before_answer(err: &reqwest::Error) -> bool {
    if err.status().is_some() || err.is_timeout() || err.is_redirect() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message() || h.is_canceled();
        }
        source = e.source();
    }
    false
}

/// The request went out and the connection ended before any byte of a response.
fn sent_unanswered(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = e.source();
    }
    false
}

async fn attempt(
    http: &reqwest::Client,
    url: &Url,
    bearer: Option<&Plain>,
    extra: &HeaderMap,
    bytes: Vec<u8>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut req = http
        .post(url.clone())
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes);
    if let Some(token) = bearer {
        req = req.bearer_auth(token.expose());
    }
    for (n, v) in extra {
        req = req.header(n, v);
    }
    req.send().await
}

fn send_error(err: reqwest::Error) -> McpError {
    if let Some(blocked) = ssrf::blocked_by_guard(&err) {
        return McpError::UrlNotAllowed(blocked.to_string());
    }
    if err.is_redirect() {
        return McpError::UrlNotAllowed("the server redirected to a refused address".into());
    }
    if err.is_timeout() {
        return McpError::Timeout;
    }
    tracing::debug!(error = %err, "MCP request failed");
    McpError::Unreachable
}

async fn read(
    mut resp: reqwest::Response,
    want_id: Option<&Value>,
    max: usize,
) -> Result<Reply, McpError> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if (300..400).contains(&status) {
        // Only same-origin redirects to allowed addresses are followed; this one was not.
        return Err(McpError::UrlNotAllowed(
            "the server redirected to another origin, which is not followed".into(),
        ));
    }
    let is_sse = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if resp.content_length().is_some_and(|len| len as usize > max) {
        return Err(McpError::TooLarge);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut sse = SseParser::default();
    while let Some(chunk) = resp.chunk().await.map_err(send_error)? {
        if buf.len() + chunk.len() > max {
            return Err(McpError::TooLarge);
        }
        if is_sse {
            buf.extend_from_slice(&chunk);
            for data in sse.feed(&chunk) {
                if let Some(found) = pick(&data, want_id) {
                    // The final response arrived: stop reading (the stream may stay open).
                    return Ok(Reply {
                        status,
                        headers,
                        message: Some(found),
                    });
                }
            }
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    let message = if is_sse {
        sse.finish().and_then(|data| pick(&data, want_id))
    } else if buf.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Value>(&buf).ok()
    };
    Ok(Reply {
        status,
        headers,
        message,
    })
}

/// A JSON-RPC response to our request in one SSE `data`, skipping notifications, server
/// requests and priming events.
fn pick(data: &str, want_id: Option<&Value>) -> Option<Value> {
    let msg: Value = serde_json::from_str(data).ok()?;
    let is_response = msg.get("result").is_some() || msg.get("error").is_some();
    let id_matches = match (msg.get("id"), want_id) {
        (Some(got), Some(want)) => got == want,
        (None | Some(Value::Null), _) => msg.get("error").is_some(),
        _ => false,
    };
    (is_response && id_matches).then_some(msg)
}

/// Incremental `text/event-stream` parser: yields each event's joined `data` lines.
#[derive(Default)]
struct SseParser {
    line: Vec<u8>,
    data: Vec<String>,
}

impl SseParser {
    fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in chunk {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(self.data.join("\n"));
                    self.data.clear();
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                self.data
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
            }
        }
        events
    }

    fn finish(&mut self) -> Option<String> {
        if !self.line.is_empty() {
            let _ = self.feed(b"\n");
        }
        (!self.data.is_empty()).then(|| self.data.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sse_events_across_chunks() {
        let mut p = SseParser::default();
        // The priming event (empty data) is no response.
        let primed = p.feed(b"id: 1\ndata: \n\nevent: message\nda");
        assert!(primed.iter().all(|d| pick(d, Some(&json!(7))).is_none()));
        let got = p.feed(b"ta: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\r\n\r\n");
        assert_eq!(got.len(), 1);
        assert!(pick(&got[0], Some(&json!(7))).is_some());
        assert!(pick(&got[0], Some(&json!(8))).is_none());
    }

    #[test]
    fn header_values() {
        assert_eq!(header_safe("tools/call"), "tools/call");
        assert_eq!(header_safe("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(header_safe(" x"), "=?base64?IHg=?=");
    }
}
