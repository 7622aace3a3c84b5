//! The auth role's rate limits (spec §7) as a client sees them: 429 with `X-Retry-After` and the
//! JSON envelope, per client IP and path, time moved by hand.

use crate::common::{Seen, TestApp, test_config};
use actix_web::test::TestRequest;
use serde_json::json;
use std::net::SocketAddr;
use switchboard::platform::role::Role;

const ON: (&str, &str) = ("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true");

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40000)
}

async fn post(app: &mut TestApp, path: &str, from: &str) -> Seen {
    let req = TestRequest::post()
        .uri(&format!("/api/auth{path}"))
        .peer_addr(peer(from))
        .set_json(json!({"email": "a@example.com", "password": "wrong-password"}));
    app.call(Role::Auth, req).await
}

async fn ok_from(app: &mut TestApp, from: &str, forwarded_for: Option<&str>) -> Seen {
    let mut req = TestRequest::get().uri("/api/auth/ok").peer_addr(peer(from));
    if let Some(xff) = forwarded_for {
        req = req.insert_header(("x-forwarded-for", xff));
    }
    app.call(Role::Auth, req).await
}

fn assert_limited(res: &Seen, retry_after: &str) {
    assert_eq!(res.status, 429, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("x-retry-after"), Some(retry_after));
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(
        res.json(),
        json!({"code": "TOO_MANY_REQUESTS", "message": "Too many requests. Please try again later."})
    );
}

#[actix_web::test]
async fn the_fourth_sign_in_within_ten_seconds_is_refused_until_the_window_passes() {
    let mut app = TestApp::with_env(&[ON]);
    for _ in 0..3 {
        // The route may not exist yet: only the limiter's answer matters here.
        assert_ne!(
            post(&mut app, "/sign-in/email", "203.0.113.1").await.status,
            429
        );
    }
    assert_limited(&post(&mut app, "/sign-in/email", "203.0.113.1").await, "10");

    app.clock.advance(chrono::Duration::milliseconds(9_500));
    assert_limited(&post(&mut app, "/sign-in/email", "203.0.113.1").await, "1");

    app.clock.advance(chrono::Duration::milliseconds(500));
    assert_ne!(
        post(&mut app, "/sign-in/email", "203.0.113.1").await.status,
        429
    );
}

#[actix_web::test]
async fn the_hundred_and_first_request_to_ok_is_refused() {
    let mut app = TestApp::with_env(&[ON]);
    for i in 0..100 {
        let res = ok_from(&mut app, "203.0.113.1", None).await;
        assert_eq!(res.status, 200, "request {}", i + 1);
    }
    assert_limited(&ok_from(&mut app, "203.0.113.1", None).await, "10");
    // Another path has its own bucket.
    let other = app
        .call(
            Role::Auth,
            TestRequest::get()
                .uri("/api/auth/get-session")
                .peer_addr(peer("203.0.113.1")),
        )
        .await;
    assert_ne!(other.status, 429);
}

#[actix_web::test]
async fn mail_endpoints_allow_three_per_minute() {
    let mut app = TestApp::with_env(&[ON]);
    for path in [
        "/request-password-reset",
        "/send-verification-email",
        "/forget-password",
    ] {
        for _ in 0..3 {
            assert_ne!(
                post(&mut app, path, "203.0.113.1").await.status,
                429,
                "{path}"
            );
        }
        assert_limited(&post(&mut app, path, "203.0.113.1").await, "60");
    }
    app.clock.advance(chrono::Duration::seconds(30));
    assert_limited(
        &post(&mut app, "/forget-password", "203.0.113.1").await,
        "30",
    );
    app.clock.advance(chrono::Duration::seconds(30));
    assert_ne!(
        post(&mut app, "/forget-password", "203.0.113.1")
            .await
            .status,
        429
    );
}

#[actix_web::test]
async fn each_client_ip_has_its_own_bucket() {
    let mut app = TestApp::with_env(&[ON]);
    for _ in 0..3 {
        post(&mut app, "/sign-in/email", "203.0.113.1").await;
    }
    assert_limited(&post(&mut app, "/sign-in/email", "203.0.113.1").await, "10");
    assert_ne!(
        post(&mut app, "/sign-in/email", "203.0.113.2").await.status,
        429
    );
    // One IPv6 client holds a /64: addresses within it share the bucket.
    for _ in 0..3 {
        post(&mut app, "/sign-in/email", "2001:db8:0:1::a").await;
    }
    assert_limited(
        &post(&mut app, "/sign-in/email", "2001:db8:0:1::b").await,
        "10",
    );
    assert_ne!(
        post(&mut app, "/sign-in/email", "2001:db8:0:2::a")
            .await
            .status,
        429
    );
}

#[actix_web::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let mut app = TestApp::with_env(&[ON]);
    for i in 0..100 {
        // A new forged address each time must not buy a fresh bucket.
        let forged = format!("198.51.100.{i}");
        assert_eq!(
            ok_from(&mut app, "203.0.113.1", Some(&forged)).await.status,
            200
        );
    }
    assert_limited(
        &ok_from(&mut app, "203.0.113.1", Some("198.51.100.250")).await,
        "10",
    );
}

#[actix_web::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let mut app = TestApp::with_env(&[
        ON,
        (
            "SWITCHBOARD__AUTH__RATE_LIMIT__TRUSTED_PROXIES",
            "10.0.0.0/8",
        ),
    ]);
    for _ in 0..100 {
        let res = ok_from(&mut app, "10.0.0.5", Some("198.51.100.7, 10.0.0.9")).await;
        assert_eq!(res.status, 200);
    }
    // Same client through another proxy of ours, with a forged hop on the left: still limited.
    let again = ok_from(&mut app, "10.0.0.6", Some("1.1.1.1, 198.51.100.7")).await;
    assert_limited(&again, "10");
    // Another client behind the same proxy is not.
    let other = ok_from(&mut app, "10.0.0.5", Some("198.51.100.8")).await;
    assert_eq!(other.status, 200);
}

#[actix_web::test]
async fn off_by_default_outside_production() {
    let mut app = TestApp::new();
    for _ in 0..10 {
        assert_ne!(
            post(&mut app, "/sign-in/email", "203.0.113.1").await.status,
            429
        );
    }
}

#[actix_web::test]
async fn a_custom_rule_can_turn_a_path_off() {
    let dir = tempdir_with(
        "[auth.rate_limit]\nenabled = true\n\n[[auth.rate_limit.rules]]\npath = \"/sign-in/*\"\nenabled = false\n",
    );
    let db = crate::common::TestDb::new();
    let mut env = std::collections::HashMap::new();
    env.insert("APP_ENV".to_owned(), "test".to_owned());
    env.insert("DATABASE_URL".to_owned(), db.url().to_owned());
    let config = switchboard::platform::config::Config::load(&env, &dir).unwrap();
    let mut app = TestApp::from_parts(db, config);
    for _ in 0..10 {
        assert_ne!(
            post(&mut app, "/sign-in/email", "203.0.113.1").await.status,
            429
        );
    }
    for _ in 0..3 {
        post(&mut app, "/sign-up/email", "203.0.113.1").await;
    }
    assert_limited(&post(&mut app, "/sign-up/email", "203.0.113.1").await, "10");
    std::fs::remove_dir_all(&dir).ok();
}

/// A config directory holding only `test.toml` with `body` (the compiled-in defaults apply).
fn tempdir_with(body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sb-rl-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/test.toml"),
    )
    .unwrap();
    std::fs::write(dir.join("test.toml"), format!("{base}\n{body}")).unwrap();
    dir
}

#[test]
fn on_by_default_only_in_production_and_an_explicit_setting_wins() {
    let on = |env: &[(&str, &str)]| {
        let c = test_config(env);
        c.auth.rate_limit.enabled_in(c.app_env)
    };
    assert!(on(&[("APP_ENV", "production")]));
    assert!(!on(&[("APP_ENV", "test")]));
    assert!(!on(&[("APP_ENV", "development")]));
    assert!(!on(&[("APP_ENV", "production"), (ON.0, "false")]));
    assert!(on(&[("APP_ENV", "test"), ON]));
}

#[test]
fn bad_trusted_proxies_are_reported_with_the_other_problems() {
    let config = test_config(&[(
        "SWITCHBOARD__AUTH__RATE_LIMIT__TRUSTED_PROXIES",
        "10.0.0.0/8, 10.0.0.0/33,nope,2001:db8::/48",
    )]);
    let problems = config.validate(&[Role::Auth]).unwrap_err().problems();
    assert_eq!(
        problems,
        vec![
            "auth.rate_limit.trusted_proxies entry \"10.0.0.0/33\" is not an IP address or CIDR",
            "auth.rate_limit.trusted_proxies entry \"nope\" is not an IP address or CIDR",
        ]
    );
}

#[actix_web::test]
async fn made_up_paths_share_one_bucket_per_client() {
    let mut app = TestApp::with_env(&[ON]);
    for i in 0..100 {
        let res = post(&mut app, &format!("/no-such-route-{i}"), "203.0.113.1").await;
        assert_eq!(res.status, 404);
    }
    assert_limited(
        &post(&mut app, "/no-such-route-x", "203.0.113.1").await,
        "10",
    );
    // Served routes keep their own buckets.
    assert_eq!(ok_from(&mut app, "203.0.113.1", None).await.status, 200);
}
