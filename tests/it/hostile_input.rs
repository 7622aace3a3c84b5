//! Issue 10's "reading of input" class, as an attacker sends it: encoded paths against the
//! CSRF guard and the rate limiter, redirect targets that collapse to another host, NUL and
//! over-long values in paths and queries, over-long or unsafe body fields, secrets in logged
//! paths, and the JWKS's CORS headers.

use crate::common::auth::{ORIGIN, PASSWORD, post, post_with, set_cookies};
use crate::common::rows::count;
use crate::common::{Seen, TestApp, logs};
use actix_web::http::header;
use actix_web::test::TestRequest;
use serde_json::json;
use std::net::SocketAddr;
use switchboard::platform::role::Role;
use url::Url;

/// A cross-site form post, as a page on evil.example would make a browser send it.
fn cross_site_form(path: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header((header::ORIGIN, "https://evil.example"))
        .insert_header(("sec-fetch-site", "cross-site"))
        .insert_header(("sec-fetch-mode", "navigate"))
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned())
}

fn body_text(res: &Seen) -> String {
    String::from_utf8_lossy(&res.body).into_owned()
}

/// Finding 1: every spelling the router reads as `/sign-in/email` gets its CSRF rule; the
/// spellings it does not route never reach a handler.
#[actix_web::test]
async fn encoded_login_paths_cannot_skip_the_login_csrf_check() {
    let mut app = TestApp::new();
    app.sign_up("gina@example.com").await;
    let form = format!("email=gina%40example.com&password={PASSWORD}");
    for path in [
        "/api/auth/sign-in/email",
        "/api/auth/sign-in/%65mail",
        "/api/auth/sign-in/%65%6D%61%69%6C",
        "/api/auth/sign%2Din/email",
        "/api/auth/%73ign-in/email",
        "/api/%61uth/sign-in/email",
    ] {
        let res = app.auth(cross_site_form(path, &form)).await;
        assert_eq!(res.status, 403, "{path}: {}", body_text(&res));
        assert_eq!(
            res.json()["code"],
            "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED",
            "{path}"
        );
        assert!(set_cookies(&res).is_empty(), "{path} set a cookie");
    }
    for path in [
        "/api/auth//sign-in/email",
        "/api/auth/sign-in/email/",
        "/api/auth/sign-in%2Femail",
        "/api/auth/sign-in/email%20",
        "/api/auth/Sign-In/email",
    ] {
        let res = app.auth(cross_site_form(path, &form)).await;
        assert_ne!(res.status, 200, "{path}");
        assert!(set_cookies(&res).is_empty(), "{path} set a cookie");
    }
    assert_eq!(
        count(&mut app.db.conn(), "session"),
        1,
        "only the sign-up's"
    );
}

#[actix_web::test]
async fn encoded_sign_up_paths_cannot_create_an_account_cross_site() {
    let mut app = TestApp::new();
    for (i, path) in [
        "/api/auth/sign-up/email",
        "/api/auth/sign-up/%65mail",
        "/api/auth/sign%2Dup/email",
        "/api/auth/sign-up/emai%6C",
    ]
    .into_iter()
    .enumerate()
    {
        let form = format!("name=M&email=m{i}%40example.com&password={PASSWORD}");
        let res = app.auth(cross_site_form(path, &form)).await;
        assert_eq!(res.status, 403, "{path}: {}", body_text(&res));
        assert_eq!(res.json()["code"], "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED");
    }
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 0);
}

/// A cookie-bearing write from an untrusted origin is refused however its path is spelled.
#[actix_web::test]
async fn encoded_paths_get_the_write_check_too() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("hal@example.com").await;
    for path in ["/api/auth/update-user", "/api/auth/upd%61te-user"] {
        let res = app
            .auth(
                TestRequest::post()
                    .uri(path)
                    .insert_header((header::ORIGIN, "https://evil.example"))
                    .insert_header((header::COOKIE, cookie.clone()))
                    .set_json(json!({"name": "pwned"})),
            )
            .await;
        assert_eq!(res.status, 403, "{path}");
        assert_eq!(res.json()["code"], "INVALID_ORIGIN", "{path}");
    }
}

/// The limiter counts every spelling of a route in the route's bucket.
#[actix_web::test]
async fn encoded_paths_share_the_routes_rate_limit_bucket() {
    let mut app = TestApp::with_env(&[("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true")]);
    let peer = SocketAddr::new("203.0.113.7".parse().unwrap(), 40000);
    let send = |path: &str| {
        TestRequest::post()
            .uri(path)
            .peer_addr(peer)
            .set_json(json!({"email": "a@example.com", "password": "wrong-password"}))
    };
    for path in [
        "/api/auth/sign-in/email",
        "/api/auth/sign-in/%65mail",
        "/api/auth/sign%2Din/email",
    ] {
        assert_ne!(app.auth(send(path)).await.status, 429, "{path}");
    }
    for path in [
        "/api/auth/sign-in/email",
        "/api/auth/sign-in/%65mail",
        "/api/auth/%73ign-in/email",
    ] {
        let res = app.auth(send(path)).await;
        assert_eq!(res.status, 429, "{path}");
        assert_eq!(res.header("x-retry-after"), Some("10"));
    }
}

/// Where a browser goes with this `Location`, from the page that answered.
fn lands_on(path: &str, res: &Seen) -> Option<Url> {
    let location = res.header("location")?;
    Url::parse(&format!("{ORIGIN}{path}"))
        .unwrap()
        .join(location)
        .ok()
}

/// Redirect targets that collapse to another host once a parameter is added or the URL is
/// resolved (finding 2), with the encodings that reached `//evil.com` before.
const COLLAPSING: &[&str] = &[
    "/.//evil.com/phish",
    "/a/..//evil.com",
    "/%2e//evil.com",
    "/%2E%2E//evil.com",
    "/./%2e/..//evil.com",
    "/.\\evil.com",
    "/\\/evil.com",
    "/\t/evil.com",
    "//evil.com",
    "///evil.com",
    "/%2F%2Fevil.com",
    "https://evil.com",
    "https:evil.com",
    "http://localhost:5001@evil.com/",
    "javascript:alert(1)",
];

#[actix_web::test]
async fn verify_email_refuses_callbacks_that_collapse_to_another_host() {
    let mut app = TestApp::new();
    // As the finding sent them: raw in the query.
    for raw in ["/.//evil.com/phish", "/a/..//evil.com", "/%252e//evil.com"] {
        let path = format!("/api/auth/verify-email?token=x&callbackURL={raw}");
        let res = app.auth(TestRequest::get().uri(&path)).await;
        assert_eq!(res.status, 403, "{raw}: {:?}", res.header("location"));
        assert_eq!(res.json()["code"], "INVALID_CALLBACK_URL", "{raw}");
        assert_eq!(res.header("location"), None);
    }
}

/// The class: no redirecting auth route answers with an off-site `Location`, whatever the
/// callback, and none answers 5xx.
#[actix_web::test]
async fn no_auth_redirect_leaves_the_trusted_origins() {
    let mut app = TestApp::new();
    for target in COLLAPSING {
        let encoded = url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>();
        for path in [
            format!("/api/auth/verify-email?token=x&callbackURL={encoded}"),
            format!("/api/auth/reset-password/tok?callbackURL={encoded}"),
        ] {
            let res = app.auth(TestRequest::get().uri(&path)).await;
            assert!(res.status < 500, "{path}: {}", res.status);
            if let Some(landed) = lands_on(&path, &res) {
                assert_eq!(
                    landed.origin().ascii_serialization(),
                    ORIGIN,
                    "{path} redirected to {landed}"
                );
            }
        }
    }
}

/// Finding 4: NUL in a path or query value is a 400, never a 500, on both roles; and the
/// screening is in front of every route, so unknown routes get it too.
#[actix_web::test]
async fn nul_in_auth_paths_and_queries_is_a_400() {
    let mut app = TestApp::new();
    for path in [
        "/api/auth/reset-password/%00?callbackURL=/x",
        "/api/auth/callback/github?state=%00",
        "/api/auth/callback/github?code=a&state=x%00y",
        "/api/auth/verify-email?token=%00",
        "/api/auth/verify-email?token=x&callbackURL=%2F%00",
        "/api/auth/no-such-route/%00",
    ] {
        let res = app.auth(TestRequest::get().uri(path)).await;
        assert_eq!(res.status, 400, "{path}: {}", body_text(&res));
        assert_eq!(res.json()["code"], "VALIDATION_ERROR", "{path}");
        assert_eq!(res.header("location"), None, "{path}");
    }
    let long = "a".repeat(5000);
    let res = app
        .auth(TestRequest::get().uri(&format!("/api/auth/reset-password/{long}?callbackURL=/x")))
        .await;
    assert_eq!(res.status, 400);
    let res = app
        .auth(TestRequest::get().uri(&format!("/api/auth/verify-email?token={long}")))
        .await;
    assert_eq!(res.status, 400);
}

/// Finding 3: a 3,000-character email is a validation error, not an index failure; so are the
/// other documented caps.
#[actix_web::test]
async fn overlong_and_unsafe_body_fields_are_validation_errors() {
    let mut app = TestApp::new();
    let long_email = format!("{}@example.com", "a".repeat(3000));
    for body in [
        json!({"name": "A", "email": long_email, "password": PASSWORD}),
        json!({"name": "A", "email": format!("{}@example.com", "a".repeat(243)), "password": PASSWORD}),
        json!({"name": "n".repeat(257), "email": "n@example.com", "password": PASSWORD}),
        json!({"name": "A", "email": "i@example.com", "password": PASSWORD, "image": "javascript:alert(1)"}),
        json!({"name": "A", "email": "c@example.com", "password": PASSWORD, "callbackURL": format!("/{}", "c".repeat(2048))}),
    ] {
        let res = app
            .auth(post("/api/auth/sign-up/email", body.clone()))
            .await;
        assert_eq!(res.status, 400, "{body}: {}", body_text(&res));
        assert_eq!(res.json()["code"], "VALIDATION_ERROR");
    }
    let res = app
        .auth(post(
            "/api/auth/sign-in/email",
            json!({"email": long_email, "password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 400, "{}", body_text(&res));
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 0);
}

/// Finding 15: update-user takes no script or data URLs as images and no 60 KB names.
#[actix_web::test]
async fn update_user_refuses_unsafe_images_and_huge_names() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("ida@example.com").await;
    for body in [
        json!({"image": "javascript:alert(document.cookie)"}),
        json!({"image": "data:text/html;base64,PHNjcmlwdD4="}),
        json!({"image": "JaVaScRiPt:alert(1)"}),
        json!({"image": format!("https://img.example/{}", "a".repeat(2100))}),
        json!({"name": "x".repeat(60_000)}),
    ] {
        let res = app
            .auth(post_with("/api/auth/update-user", &cookie, body.clone()))
            .await;
        assert_eq!(res.status, 400, "{}", body_text(&res));
        assert_eq!(res.json()["code"], "VALIDATION_ERROR");
    }
    let res = app
        .auth(post_with(
            "/api/auth/update-user",
            &cookie,
            json!({"name": "<b>Ida</b>", "image": "https://img.example/ida.png"}),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", body_text(&res));
    let session = app.session_of(&cookie).await;
    assert_eq!(session["user"]["image"], "https://img.example/ida.png");
}

/// Finding 6: a reset token in the path never reaches the log, however it is spelled.
#[actix_web::test]
async fn reset_tokens_in_the_path_are_redacted_in_logs() {
    let logs = logs::capture();
    let mut app = TestApp::new();
    for (path, secret) in [
        (
            "/api/auth/reset-password/LiveResetTok3nAbc?callbackURL=https%3A%2F%2Fevil.example",
            "LiveResetTok3nAbc",
        ),
        (
            "/api/auth/reset-password/LiveResetTok3nDef",
            "LiveResetTok3nDef",
        ),
        (
            "/api/auth/reset-password/LiveReset%54ok3nGhi?callbackURL=https%3A%2F%2Fevil.example",
            "Tok3nGhi",
        ),
    ] {
        let res = app.auth(TestRequest::get().uri(path)).await;
        assert!(res.status >= 400, "{path}");
        let text = logs.text();
        assert!(!text.contains(secret), "{secret} logged");
    }
    assert!(
        logs.text()
            .contains("http.target=/api/auth/reset-password/[redacted]"),
        "the request is still logged, with the token redacted"
    );
}

/// Finding 15: the JWKS is public (`*`) and never claims credentials with it.
#[actix_web::test]
async fn jwks_never_pairs_a_wildcard_origin_with_credentials() {
    let mut app = TestApp::new();
    for origin in [None, Some("https://anyone.example"), Some(ORIGIN)] {
        for path in ["/.well-known/jwks.json", "/api/auth/jwks"] {
            let mut req = TestRequest::get().uri(path);
            if let Some(o) = origin {
                req = req.insert_header((header::ORIGIN, o));
            }
            let res = app.call(Role::Auth, req).await;
            assert_eq!(res.status, 200, "{path}");
            let acao = res.header("access-control-allow-origin");
            let credentials = res.header("access-control-allow-credentials");
            assert!(
                !(acao == Some("*") && credentials == Some("true")),
                "{path} from {origin:?}: {acao:?} with credentials"
            );
            assert!(
                acao.is_some(),
                "{path} from {origin:?} readable cross-origin"
            );
        }
    }
}

/// Pieces an attacker splices into paths and queries: encodings of dots, slashes, NUL and
/// invalid UTF-8, route names, over-long runs.
const PIECES: &[&str] = &[
    "%00",
    "%2e",
    "%2E",
    "..",
    ".",
    "%2F",
    "%2f",
    "%5C",
    "%25",
    "%252e",
    "%ff",
    "%C0%AF",
    "%0A",
    "%09",
    "%20",
    "+",
    ";",
    ":",
    "@",
    "!",
    "~",
    "%C3%A9",
    "%E2%82%AC",
    "api",
    "auth",
    "sign-in",
    "sign-up",
    "email",
    "%65mail",
    "reset-password",
    "verify-email",
    "callback",
    "github",
    "update-user",
    "get-session",
    "jwks",
    "x",
    "",
];

fn attacker_path() -> impl proptest::strategy::Strategy<Value = (String, String)> {
    use proptest::prelude::*;
    let piece = proptest::sample::select(PIECES);
    let segment = prop_oneof![
        8 => proptest::collection::vec(piece, 1..4).prop_map(|p| p.concat()),
        4 => Just("%00".to_owned()),
        1 => Just("a".repeat(600)),
    ];
    // Half the time a real route's shape with attacker pieces where its dynamic part is (or
    // where a static part is), half the time any path.
    let templates = proptest::sample::select(
        &[
            "/reset-password/*",
            "/callback/*",
            "/callback/github",
            "/verify-email",
            "/sign-in/*",
            "/sign-up/*",
            "/*/email",
            "/update-user",
            "/*",
            "/*/*",
        ][..],
    );
    let shaped = (templates, segment.clone())
        .prop_map(|(t, seg)| format!("/api/auth{}", t.replace('*', &seg)));
    let any = proptest::collection::vec(segment, 0..5).prop_map(|segs| {
        let mut path = String::from("/api/auth");
        for s in segs {
            path.push('/');
            path.push_str(&s);
        }
        path
    });
    let path = prop_oneof![shaped, any];
    let value = prop_oneof![
        4 => proptest::collection::vec(proptest::sample::select(PIECES), 0..6)
            .prop_map(|p| p.concat()),
        1 => Just("%00".to_owned()),
        1 => Just("/x".to_owned()),
    ];
    let key =
        proptest::sample::select(&["callbackURL", "token", "state", "code", "error", "x"][..]);
    // Often with a valid callbackURL first, so the routes that need one get past it.
    let with_callback = proptest::bool::ANY;
    let query = (with_callback, proptest::collection::vec((key, value), 0..4)).prop_map(
        |(with_callback, pairs)| {
            let mut parts: Vec<String> = Vec::new();
            if with_callback {
                parts.push("callbackURL=/x".to_owned());
            }
            parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
            parts.join("&")
        },
    );
    (path, query)
}

/// The path screening and every decision behind it, under random adversarial paths and
/// queries (a bounded, seeded run): no 5xx, no off-site `Location`, no panic.
#[actix_web::test]
async fn random_adversarial_paths_never_500_or_redirect_off_site() {
    use proptest::strategy::{Strategy, ValueTree};
    let mut app = TestApp::new();
    let cookie = app.signed_in("pat@example.com").await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = attacker_path();
    for i in 0..600 {
        let (path, query) = strategy.new_tree(&mut runner).unwrap().current();
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let req = if i % 2 == 0 {
            TestRequest::get().uri(&uri)
        } else {
            post_with(&uri, &cookie, json!({}))
        };
        let res = app.auth(req).await;
        assert!(
            res.status < 500,
            "{uri}: {} {}",
            res.status,
            body_text(&res)
        );
        if let Some(landed) = lands_on("/api/auth/x", &res) {
            assert_eq!(
                landed.origin().ascii_serialization(),
                ORIGIN,
                "{uri} redirected to {landed}"
            );
            // A 500 dressed as a redirect is still a 500.
            assert!(
                !landed.as_str().contains("internal_server_error"),
                "{uri} redirected to {landed}"
            );
        }
    }
}
