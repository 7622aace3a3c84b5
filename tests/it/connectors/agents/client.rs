//! The Anthropic client alone: Retry-After, backoff on 529, never retrying a 4xx.

use super::*;
use std::sync::Arc;
use switchboard::connectors::anthropic::{self, AnthropicError, Request, Sleeper};

#[derive(Default)]
struct Recorded(Mutex<Vec<Duration>>);

impl Sleeper for Recorded {
    fn sleep(&self, d: Duration) -> futures_util::future::BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(d);
        Box::pin(async {})
    }
}

fn client(server: &MockServer, retries: u32) -> (anthropic::Client, Arc<Recorded>) {
    let config = crate::common::test_config(&[
        (
            "SWITCHBOARD__CONNECTORS__ANTHROPIC__BASE_URL",
            &server.uri(),
        ),
        (
            "SWITCHBOARD__CONNECTORS__ANTHROPIC__MAX_RETRIES",
            &retries.to_string(),
        ),
    ]);
    let sleeper = Arc::new(Recorded::default());
    let c = anthropic::Client::new(
        &config.connectors.anthropic,
        Some(switchboard::platform::secret::Secret::new(
            "test-anthropic-key",
        )),
    )
    .unwrap()
    .with_sleeper(sleeper.clone());
    (c, sleeper)
}

fn request() -> Request {
    Request {
        model: "claude-sonnet-5-5".into(),
        max_tokens: 100,
        system: None,
        messages: vec![json!({"role": "user", "content": "hi"})],
        tools: vec![],
    }
}

#[actix_web::test]
async fn the_client_honours_retry_after_backs_off_on_529_and_never_retries_a_4xx() {
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let server = anthropic_stand_in(vec![
        ResponseTemplate::new(429).insert_header("retry-after", "7"),
        ResponseTemplate::new(529).set_body_json(&overloaded),
        // A malformed tool input is a garbled response: tried again.
        stream(frames(&[
            start(1),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\": "}}),
            json!({"type": "content_block_stop", "index": 0}),
        ])),
        text_answer("ok"),
    ])
    .await;
    let (c, slept) = client(&server, 3);
    let res = c.stream(&request(), None).await.unwrap();
    assert_eq!(res.attempts, 4);
    assert_eq!(res.request_id.as_deref(), Some("req_test"));
    assert_eq!(res.message.content[0]["text"], "ok");
    let slept = slept.0.lock().unwrap().clone();
    assert_eq!(slept.len(), 3);
    assert_eq!(slept[0], Duration::from_secs(7));
    assert!(slept[1] >= Duration::from_millis(750) && slept[1] <= Duration::from_secs(1));

    // Out of retries: the last error comes back.
    let server = anthropic_stand_in(vec![
        ResponseTemplate::new(529).set_body_json(&overloaded),
        ResponseTemplate::new(529).set_body_json(&overloaded),
    ])
    .await;
    let (c, _) = client(&server, 1);
    let err = c.stream(&request(), None).await.unwrap_err();
    assert!(
        matches!(err, AnthropicError::Api { status: 529, .. }),
        "{err:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let server = anthropic_stand_in(vec![
        ResponseTemplate::new(401)
            .insert_header("request-id", "req_401")
            .set_body_json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
    ])
    .await;
    let (c, slept) = client(&server, 3);
    let err = c.stream(&request(), None).await.unwrap_err();
    match err {
        AnthropicError::Api {
            status,
            kind,
            request_id,
            ..
        } => {
            assert_eq!((status, kind.as_str()), (401, "authentication_error"));
            assert_eq!(request_id.as_deref(), Some("req_401"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert!(slept.0.lock().unwrap().is_empty());
}
