//! The HTTP platform both roles share: health and readiness, CORS, request ids, the JSON error
//! envelope for actix's own errors, and each role's OpenAPI document.

use crate::common::{TestApp, TestDb, test_config};
use actix_web::http::header;
use actix_web::{HttpResponse, test, web};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::db::build_pool;
use switchboard::platform::app::build_app;
use switchboard::platform::clock::SystemClock;
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::platform::telemetry::RoleTag;

fn compiled_roles() -> Vec<Role> {
    [Role::Auth, Role::Connectors]
        .into_iter()
        .filter(|r| r.compiled_in())
        .collect()
}

#[actix_web::test]
async fn healthz_and_readyz_answer_on_every_role() {
    let mut app = TestApp::new();
    for role in compiled_roles() {
        let health = app.get(role, "/healthz").await;
        assert_eq!(health.status, 200);
        assert_eq!(health.json(), json!({"status": "ok"}));
        let ready = app.get(role, "/readyz").await;
        assert_eq!(ready.status, 200, "{role}");
        assert_eq!(ready.json(), json!({"status": "ready"}));
    }
}

#[actix_web::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let config = test_config(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere"),
        ("SWITCHBOARD__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
    ]);
    let mut app = TestApp::from_parts(TestDb::empty(), config);
    for role in compiled_roles() {
        let ready = app.get(role, "/readyz").await;
        assert_eq!(ready.status, 503);
        assert_eq!(ready.json()["code"], "DATABASE_UNAVAILABLE");
        // The process itself is still up.
        assert_eq!(app.get(role, "/healthz").await.status, 200);
    }
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let mut app = TestApp::new();
    let res = app.get(compiled_roles()[0], "/healthz").await;
    let id = res.header("x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 36, "a uuid: {id}");
    let again = app.get(compiled_roles()[0], "/healthz").await;
    assert_ne!(again.header("x-request-id"), Some(id));
}

#[actix_web::test]
async fn cors_preflight_allows_configured_origins_with_credentials() {
    let mut app = TestApp::with_env(&[(
        "CORS_ORIGINS",
        "http://localhost:5173,https://app.example.com",
    )]);
    for role in compiled_roles() {
        let res = app
            .call(
                role,
                test::TestRequest::default()
                    .method(actix_web::http::Method::OPTIONS)
                    .uri("/healthz")
                    .insert_header((header::ORIGIN, "https://app.example.com"))
                    .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
                    .insert_header((header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")),
            )
            .await;
        assert_eq!(res.status, 200, "{role}");
        assert_eq!(
            res.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
        let methods = res.header("access-control-allow-methods").unwrap();
        assert!(methods.contains("POST"), "{methods}");
        let headers = res
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("content-type"), "{headers}");
    }
}

#[actix_web::test]
async fn cors_withholds_headers_from_unknown_origins_and_exposes_set_auth_jwt() {
    let mut app = TestApp::with_env(&[("CORS_ORIGINS", "https://app.example.com")]);
    let role = compiled_roles()[0];
    let evil = app
        .call(
            role,
            test::TestRequest::get()
                .uri("/healthz")
                .insert_header((header::ORIGIN, "https://evil.example")),
        )
        .await;
    assert_eq!(evil.status, 200);
    assert_eq!(evil.header("access-control-allow-origin"), None);

    let good = app
        .call(
            role,
            test::TestRequest::get()
                .uri("/healthz")
                .insert_header((header::ORIGIN, "https://app.example.com")),
        )
        .await;
    assert_eq!(
        good.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let exposed = good.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("set-auth-jwt"), "{exposed}");
}

#[actix_web::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let mut app = TestApp::new();
    for role in compiled_roles() {
        let missing = app.get(role, "/no/such/route").await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.header("content-type"), Some("application/json"));
        assert_eq!(
            missing.json(),
            json!({"code": "NOT_FOUND", "message": "Not found"})
        );

        let wrong = app
            .call(role, test::TestRequest::delete().uri("/healthz"))
            .await;
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.json()["code"], "METHOD_NOT_ALLOWED");
    }
}

/// The platform's extractor settings, seen through a route of the test's own.
async fn echo_app_call(req: test::TestRequest) -> crate::common::Seen {
    let db = TestDb::new();
    let config = test_config(&[
        ("DATABASE_URL", db.url()),
        ("SWITCHBOARD__SERVER__JSON_LIMIT_BYTES", "2048"),
    ]);
    let pool = build_pool(&config.database);
    let platform = web::Data::new(Platform::new(Arc::new(config), pool, Arc::new(SystemClock)));
    let app = test::init_service(build_app(platform, RoleTag("test"), |cfg| {
        cfg.route(
            "/echo",
            web::post().to(|body: web::Json<Value>| async move {
                HttpResponse::Ok().json(body.into_inner())
            }),
        );
        cfg.route(
            "/typed",
            web::post().to(|body: web::Json<Typed>| async move {
                HttpResponse::Ok().json(json!({"n": body.n}))
            }),
        );
    }))
    .await;
    crate::common::Seen::of(test::call_service(&app, req.to_request()).await).await
}

#[derive(serde::Deserialize)]
struct Typed {
    n: u32,
}

#[actix_web::test]
async fn malformed_json_is_a_json_400() {
    let res = echo_app_call(
        test::TestRequest::post()
            .uri("/echo")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{\"a\": "),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"code": "BAD_REQUEST", "message": "Invalid JSON in request body"})
    );
}

#[actix_web::test]
async fn a_wrong_shape_is_a_validation_error() {
    let res = echo_app_call(
        test::TestRequest::post()
            .uri("/typed")
            .set_json(json!({"n": "seven"})),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "VALIDATION_ERROR");
}

#[actix_web::test]
async fn an_oversized_body_is_a_json_413() {
    let big = json!({"pad": "x".repeat(4096)});
    let res = echo_app_call(test::TestRequest::post().uri("/echo").set_json(big)).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.json()["code"], "PAYLOAD_TOO_LARGE");
}

#[actix_web::test]
async fn a_wrong_content_type_is_a_json_415() {
    let res = echo_app_call(
        test::TestRequest::post()
            .uri("/echo")
            .insert_header((header::CONTENT_TYPE, "text/plain"))
            .set_payload("{}"),
    )
    .await;
    assert_eq!(res.status, 415);
    assert_eq!(res.json()["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[actix_web::test]
async fn each_role_publishes_its_openapi_document() {
    let mut app = TestApp::new();
    for role in compiled_roles() {
        let res = app.get(role, "/openapi.json").await;
        assert_eq!(res.status, 200);
        let doc = res.json();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], format!("switchboard {role}"));
        for path in ["/healthz", "/readyz"] {
            assert!(doc["paths"][path]["get"].is_object(), "{role} lacks {path}");
        }
    }
}

#[cfg(feature = "auth")]
#[actix_web::test]
async fn the_auth_document_lists_every_auth_endpoint() {
    let mut app = TestApp::new();
    let doc = app.get(Role::Auth, "/openapi.json").await.json();
    let expected = [
        ("get", "/api/auth/ok"),
        ("get", "/api/auth/error"),
        ("post", "/api/auth/sign-up/email"),
        ("post", "/api/auth/sign-in/email"),
        ("post", "/api/auth/sign-out"),
        ("get", "/api/auth/get-session"),
        ("get", "/api/auth/list-sessions"),
        ("post", "/api/auth/revoke-session"),
        ("post", "/api/auth/revoke-sessions"),
        ("post", "/api/auth/revoke-other-sessions"),
        ("post", "/api/auth/update-user"),
        ("post", "/api/auth/change-password"),
        ("post", "/api/auth/change-email"),
        ("post", "/api/auth/delete-user"),
        ("post", "/api/auth/send-verification-email"),
        ("get", "/api/auth/verify-email"),
        ("post", "/api/auth/request-password-reset"),
        ("post", "/api/auth/forget-password"),
        ("get", "/api/auth/reset-password/{token}"),
        ("post", "/api/auth/reset-password"),
    ];
    for (method, path) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
}

/// A development configuration (config/development.toml) over a fresh test database.
#[cfg(feature = "auth")]
fn development_app(env: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new();
    let mut all = vec![("APP_ENV", "development"), ("DATABASE_URL", db.url())];
    all.extend_from_slice(env);
    let config = test_config(&all);
    TestApp::from_parts(db, config)
}

#[actix_web::test]
async fn only_development_admits_the_usual_local_app_origins() {
    let dev = test_config(&[("APP_ENV", "development")]);
    for origin in ["http://localhost:3000", "http://localhost:5173"] {
        assert!(
            dev.server.cors_origins.iter().any(|o| o == origin),
            "{origin} missing from {:?}",
            dev.server.cors_origins
        );
    }
    let production = test_config(&[("APP_ENV", "production")]);
    assert!(
        production.server.cors_origins.is_empty(),
        "{:?}",
        production.server.cors_origins
    );
    // An explicit CORS_ORIGINS replaces the development list.
    let explicit = test_config(&[
        ("APP_ENV", "development"),
        ("CORS_ORIGINS", "http://localhost:8080"),
    ]);
    assert_eq!(explicit.server.cors_origins, vec!["http://localhost:8080"]);
}

#[cfg(feature = "auth")]
#[actix_web::test]
async fn a_browser_app_on_a_dev_port_signs_up_in_development() {
    let mut app = development_app(&[]);
    for (i, origin) in [
        "http://localhost:3000",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
        "http://127.0.0.1:5001",
    ]
    .into_iter()
    .enumerate()
    {
        let res = app
            .call(
                Role::Auth,
                test::TestRequest::post()
                    .uri("/api/auth/sign-up/email")
                    .insert_header((header::ORIGIN, origin))
                    .insert_header(("sec-fetch-mode", "cors"))
                    .insert_header(("sec-fetch-site", "same-site"))
                    .set_json(json!({
                        "name": "Dev",
                        "email": format!("dev{i}@example.com"),
                        "password": "a-long-enough-password",
                    })),
            )
            .await;
        assert_eq!(
            res.status,
            200,
            "{origin}: {}",
            String::from_utf8_lossy(&res.body)
        );
        if !origin.ends_with(":5001") {
            assert_eq!(res.header("access-control-allow-origin"), Some(origin));
        }
    }
}

#[cfg(feature = "auth")]
#[actix_web::test]
async fn a_refused_origin_is_logged_with_the_setting_that_would_admit_it() {
    let logs = crate::common::logs::capture();
    let mut app = development_app(&[]);
    let origin = "http://localhost:4711";
    let res = app
        .call(
            Role::Auth,
            test::TestRequest::post()
                .uri("/api/auth/sign-up/email")
                .insert_header((header::ORIGIN, origin))
                .insert_header(("sec-fetch-mode", "cors"))
                .set_json(json!({
                    "name": "Dev",
                    "email": "refused@example.com",
                    "password": "a-long-enough-password",
                })),
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.json()["code"], "INVALID_ORIGIN");
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("INVALID_ORIGIN") && l.contains(origin))
        .unwrap_or_else(|| panic!("no log line names {origin}:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("CORS_ORIGINS"), "{line}");
    assert!(line.contains("BETTER_AUTH_TRUSTED_ORIGINS"), "{line}");
}

#[actix_web::test]
async fn a_refused_preflight_is_a_json_error_and_is_logged() {
    let logs = crate::common::logs::capture();
    let mut app = TestApp::with_env(&[("CORS_ORIGINS", "https://app.example.com")]);
    let origin = "https://preflight-refused.example";
    for role in compiled_roles() {
        let res = app
            .call(
                role,
                test::TestRequest::default()
                    .method(actix_web::http::Method::OPTIONS)
                    .uri("/healthz")
                    .insert_header((header::ORIGIN, origin))
                    .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST")),
            )
            .await;
        assert_eq!(res.status, 403, "{role}");
        assert_eq!(res.json()["code"], "CORS_ORIGIN_NOT_ALLOWED", "{role}");
        assert!(
            res.json()["message"].as_str().unwrap().contains(origin),
            "{role}"
        );
        assert_eq!(res.header("access-control-allow-origin"), None);
        // A preflight CORS refuses for another reason is JSON too.
        let bad_method = app
            .call(
                role,
                test::TestRequest::default()
                    .method(actix_web::http::Method::OPTIONS)
                    .uri("/healthz")
                    .insert_header((header::ORIGIN, "https://app.example.com"))
                    .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "TRACE")),
            )
            .await;
        assert_eq!(bad_method.status, 400, "{role}");
        assert_eq!(bad_method.json()["code"], "BAD_REQUEST", "{role}");
    }
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains(origin) && l.contains("WARN"))
        .unwrap_or_else(|| panic!("no WARN line names {origin}:\n{text}"));
    assert!(line.contains("CORS_ORIGINS"), "{line}");
}

#[cfg(feature = "auth")]
#[actix_web::test]
async fn forwarded_requests_without_a_trusted_proxy_are_warned_about_once() {
    let logs = crate::common::logs::capture();
    let mut app = TestApp::with_env(&[("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true")]);
    let balancer: std::net::SocketAddr = "10.99.88.77:40000".parse().unwrap();
    for _ in 0..2 {
        let res = app
            .call(
                Role::Auth,
                test::TestRequest::get()
                    .uri("/api/auth/ok")
                    .peer_addr(balancer)
                    .insert_header(("x-forwarded-for", "203.0.113.9")),
            )
            .await;
        assert_eq!(res.status, 200);
    }
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("10.99.88.77") && l.contains("trusted_proxies"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);

    // With the balancer trusted there is nothing to say.
    let mut trusted = TestApp::with_env(&[
        ("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true"),
        (
            "SWITCHBOARD__AUTH__RATE_LIMIT__TRUSTED_PROXIES",
            "10.99.88.0/24",
        ),
    ]);
    let before = logs.text().matches("10.99.88.78").count();
    trusted
        .call(
            Role::Auth,
            test::TestRequest::get()
                .uri("/api/auth/ok")
                .peer_addr("10.99.88.78:40000".parse().unwrap())
                .insert_header(("x-forwarded-for", "203.0.113.9")),
        )
        .await;
    assert_eq!(logs.text().matches("10.99.88.78").count(), before);
}
