//! The Resend client against a stand-in on 127.0.0.1: what it sends, how it retries, and that no
//! mail-provider trouble ever reaches the client's answer.

use crate::common::auth::post;
use crate::common::mail::{API_KEY, ResendStandIn, link_in};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

fn reset_request(email: &str) -> actix_web::test::TestRequest {
    post(
        "/api/auth/request-password-reset",
        json!({"email": email, "redirectTo": "/reset"}),
    )
}

const RESET_ANSWER: &str =
    "If this email exists in our system, check your email for the reset link";

#[actix_web::test]
async fn sends_what_resend_expects_with_the_configured_sender() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[
        ("SWITCHBOARD__AUTH__MAIL__PRODUCT_NAME", "Acme & Co"),
        ("SWITCHBOARD__AUTH__MAIL__FROM", "Acme <no-reply@acme.test>"),
        ("SWITCHBOARD__AUTH__MAIL__REPLY_TO", "help@acme.test"),
    ]);
    app.sign_up("ann@example.com").await;
    let res = app.auth(reset_request("ann@example.com")).await;
    assert_eq!(res.status, 200);

    resend.wait_for(1).await;
    let request = &resend.requests().await[0];
    assert_eq!(request.method.as_str(), "POST");
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert!(
        header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(header("user-agent").unwrap().starts_with("switchboard/"));
    let key = header("idempotency-key").expect("an Idempotency-Key");
    assert!(
        key.starts_with("reset-password/") && key.len() <= 256,
        "{key}"
    );

    let mail: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(mail["from"], "Acme <no-reply@acme.test>");
    assert_eq!(mail["to"], json!(["ann@example.com"]));
    assert_eq!(mail["reply_to"], "help@acme.test");
    assert_eq!(mail["subject"], "Reset your Acme & Co password");
    let link = link_in(&mail);
    assert!(
        link.starts_with("http://localhost:5001/api/auth/reset-password/"),
        "{link}"
    );
    let html = mail["html"].as_str().unwrap();
    assert!(
        html.contains("Acme &amp; Co"),
        "product name escaped: {html}"
    );
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("Hello Alice,") && text.contains("expires in 1 hour"));
}

#[actix_web::test]
async fn retries_a_server_error_with_the_same_idempotency_key() {
    let resend = ResendStandIn::bare().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"statusCode": 500, "name": "internal_server_error", "message": "boom"}),
        ))
        .up_to_n_times(1)
        .mount(&resend.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ok"})))
        .mount(&resend.server)
        .await;
    let mut app = resend.app(&[]);
    app.sign_up("bo@example.com").await;
    assert_eq!(app.auth(reset_request("bo@example.com")).await.status, 200);

    resend.wait_for(2).await;
    let requests = resend.requests().await;
    assert_eq!(requests.len(), 2, "one retry, then done");
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.headers.get("idempotency-key").unwrap().clone())
        .collect();
    assert_eq!(keys[0], keys[1], "the retry reuses the Idempotency-Key");
    assert_eq!(requests[0].body, requests[1].body);
    for r in &requests {
        assert_eq!(
            r.headers.get("authorization").unwrap(),
            &format!("Bearer {API_KEY}")
        );
    }
}

#[actix_web::test]
async fn honours_retry_after_on_429_and_stops_after_the_configured_retries() {
    let resend = ResendStandIn::bare().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"statusCode": 429, "name": "rate_limit_exceeded", "message": "slow down"})),
        )
        .mount(&resend.server)
        .await;
    let mut app = resend.app(&[("SWITCHBOARD__AUTH__MAIL__MAX_RETRIES", "2")]);
    app.sign_up("cy@example.com").await;
    let res = app.auth(reset_request("cy@example.com")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["message"], RESET_ANSWER);
    assert_eq!(resend.wait_for(3).await.len(), 3, "1 attempt + 2 retries");
    // A later mail gets through the same client after the first gave up.
    resend.server.reset().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ok"})))
        .mount(&resend.server)
        .await;
    assert_eq!(app.auth(reset_request("cy@example.com")).await.status, 200);
    assert_eq!(resend.wait_for(1).await.len(), 1);
}

#[actix_web::test]
async fn does_not_retry_what_resend_refuses() {
    let resend = ResendStandIn::bare().await;
    for (to, status, name) in [
        ("refused@example.com", 422, "invalid_from_address"),
        ("quota@example.com", 429, "daily_quota_exceeded"),
    ] {
        Mock::given(method("POST"))
            .and(path("/emails"))
            .and(body_partial_json(json!({"to": [to]})))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"statusCode": status, "name": name, "message": "no"})),
            )
            .mount(&resend.server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ok"})))
        .mount(&resend.server)
        .await;
    let mut app = resend.app(&[]);
    for email in [
        "refused@example.com",
        "quota@example.com",
        "marker@example.com",
    ] {
        app.sign_up(email).await;
        assert_eq!(app.auth(reset_request(email)).await.status, 200);
    }
    // The marker mail went last; a retry of the others would have come at once, before it.
    assert_eq!(resend.mail_to("marker@example.com", 3).await.len(), 1);
    let emails = resend.emails().await;
    assert_eq!(emails.len(), 3, "{emails:#?}");
}

#[actix_web::test]
async fn a_resend_outage_never_changes_the_answer() {
    // Nothing listens on this port: every attempt fails to connect.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let down = ResendStandIn::bare().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(300)))
        .mount(&down.server)
        .await;
    let slow_uri = down.server.uri();
    // Kept alive to the end: their outbox workers send after the answers.
    let mut apps = Vec::new();
    for base in [closed.as_str(), slow_uri.as_str()] {
        let mut app = crate::common::TestApp::with_env(&[
            ("RESEND_API_KEY", API_KEY),
            ("SWITCHBOARD__AUTH__MAIL__RESEND_BASE_URL", base),
            (
                "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_UP",
                "true",
            ),
        ]);
        let started = Instant::now();
        let signed_up = app.sign_up("dee@example.com").await;
        assert!(signed_up.json()["token"].is_string());
        let known = app.auth(reset_request("dee@example.com")).await;
        let unknown = app.auth(reset_request("nobody@example.com")).await;
        let verify = app
            .auth(post(
                "/api/auth/send-verification-email",
                json!({"email": "dee@example.com"}),
            ))
            .await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "a provider that is down or slow held up the responses ({base}): {:?}",
            started.elapsed()
        );
        for res in [&known, &unknown] {
            assert_eq!(res.status, 200);
            assert_eq!(res.json(), json!({"status": true, "message": RESET_ANSWER}));
        }
        assert_eq!(verify.status, 200);
        assert_eq!(verify.json(), json!({"status": true}));
        apps.push(app);
    }
    // The slow stand-in is tried, by the outbox's worker, after the answers went out.
    assert!(!down.wait_for(1).await.is_empty());
}

#[actix_web::test]
async fn without_a_key_mail_is_only_logged() {
    // config/test.toml sets no RESEND_API_KEY: the log transport; every flow still answers.
    let mut app = crate::common::TestApp::with_env(&[(
        "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_UP",
        "true",
    )]);
    app.sign_up("eve@example.com").await;
    let res = app.auth(reset_request("eve@example.com")).await;
    assert_eq!(res.status, 200);
    // The token is written in the background, after the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = app.db.conn();
    let sql = "verification WHERE identifier LIKE 'reset-password:%'";
    while crate::common::rows::count(&mut conn, sql) == 0 {
        assert!(Instant::now() < deadline, "no reset token was written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(crate::common::rows::count(&mut conn, sql), 1);
}

/// An app whose process runs no job workers: what it accepts waits in the outbox.
const NO_WORKERS: (&str, &str) = ("SWITCHBOARD__JOBS__ENABLED", "false");

#[actix_web::test]
async fn a_reset_mail_requested_just_before_a_restart_is_sent_after_it() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[NO_WORKERS]);
    app.sign_up("ann@example.com").await;
    let res = app.auth(reset_request("ann@example.com")).await;
    assert_eq!(res.json(), json!({"status": true, "message": RESET_ANSWER}));
    // The token and its mail were committed together; the process "stops" before sending.
    app.wait_for_jobs("mail_send", 1).await;
    assert!(resend.requests().await.is_empty(), "nothing sent yet");
    let mut conn = app.db.conn();
    let token = crate::common::rows::text(
        &mut conn,
        "SELECT substr(identifier, 16) FROM verification WHERE identifier LIKE 'reset-password:%'",
    )
    .expect("a reset token");
    let payload = crate::common::rows::text(
        &mut conn,
        "SELECT payload FROM jobs WHERE kind = 'mail_send'",
    )
    .unwrap();
    assert!(
        !payload.contains(&token) && !payload.contains("ann@example.com"),
        "the stored job holds the link and address sealed: {payload}"
    );

    // A new process on the same database sends it, once, with the stored idempotency key.
    assert_eq!(app.drain_jobs().await, 1);
    let requests = resend.requests().await;
    assert_eq!(requests.len(), 1);
    let key = requests[0].headers.get("idempotency-key").unwrap();
    assert!(key.to_str().unwrap().starts_with("reset-password/"));
    let mail: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(mail["to"], json!(["ann@example.com"]));
    assert!(link_in(&mail).contains(&format!("/reset-password/{token}?")));
    assert_eq!(crate::common::rows::count(&mut conn, "jobs"), 0);
    assert_eq!(app.drain_jobs().await, 0, "sent once");
    assert_eq!(resend.requests().await.len(), 1);
}

#[actix_web::test]
async fn the_outbox_retries_a_server_error_with_the_same_key_and_a_refusal_ends_dead() {
    let resend = ResendStandIn::bare().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(body_partial_json(json!({"to": ["refused@example.com"]})))
        .respond_with(
            ResponseTemplate::new(422).set_body_json(
                json!({"statusCode": 422, "name": "validation_error", "message": "no"}),
            ),
        )
        .mount(&resend.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"statusCode": 500, "name": "internal_server_error", "message": "boom"}),
        ))
        .up_to_n_times(1)
        .mount(&resend.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ok"})))
        .mount(&resend.server)
        .await;
    // No retries inside one run: every retry here is the job's.
    let mut app = resend.app(&[NO_WORKERS, ("SWITCHBOARD__AUTH__MAIL__MAX_RETRIES", "0")]);
    let mut conn = app.db.conn();
    app.sign_up("bo@example.com").await;
    assert_eq!(app.auth(reset_request("bo@example.com")).await.status, 200);
    app.wait_for_jobs("mail_send", 1).await;

    assert_eq!(app.drain_jobs().await, 1);
    assert_eq!(resend.requests().await.len(), 1);
    assert_eq!(
        crate::common::rows::count(
            &mut conn,
            "jobs WHERE state = 'queued' AND attempts = 1 AND last_error LIKE '%500%'"
        ),
        1
    );
    assert_eq!(app.drain_jobs().await, 0, "not before its backoff");
    app.clock.advance(chrono::Duration::hours(2));
    assert_eq!(app.drain_jobs().await, 1);
    let requests = resend.requests().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers.get("idempotency-key"),
        requests[1].headers.get("idempotency-key"),
        "the job's retry reuses the Idempotency-Key"
    );
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(crate::common::rows::count(&mut conn, "jobs"), 0);

    // A 4xx refusal is not retried: the job is dead with Resend's answer.
    app.sign_up("refused@example.com").await;
    assert_eq!(
        app.auth(reset_request("refused@example.com")).await.status,
        200
    );
    app.wait_for_jobs("mail_send", 1).await;
    assert_eq!(app.drain_jobs().await, 1);
    assert_eq!(
        crate::common::rows::count(
            &mut conn,
            "jobs WHERE state = 'dead' AND last_error LIKE '%422 validation_error%'"
        ),
        1
    );
    app.clock.advance(chrono::Duration::hours(2));
    assert_eq!(app.drain_jobs().await, 0);
    assert_eq!(resend.mail_to("refused@example.com", 1).await.len(), 1);
    assert_eq!(resend.requests().await.len(), 3);
}
