//! Sign-up, sign-in and sign-out as Better Auth's client sees them: bodies, codes, statuses,
//! cookies byte for byte, and the rows written.

use crate::common::TestApp;
use crate::common::auth::{ORIGIN, PASSWORD, cookie_header, post, post_with, set_cookies};
use crate::common::rows::{count, exec, text};
use actix_web::http::header;
use actix_web::test::TestRequest;
use serde_json::json;

#[actix_web::test]
async fn sign_up_creates_user_account_and_session() {
    let mut app = TestApp::new();
    let res = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "Alice", "email": "Alice@Example.com", "password": PASSWORD, "emailVerified": true}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let body = res.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    let user = &body["user"];
    assert_eq!(user["email"], "alice@example.com", "stored lower-cased");
    assert_eq!(user["name"], "Alice");
    assert_eq!(
        user["emailVerified"], false,
        "emailVerified from the body is ignored"
    );
    assert_eq!(user["image"], serde_json::Value::Null);
    let created = user["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), 24, "Date.toJSON() form: {created}");
    assert!(created.ends_with('Z'));

    let cookies = res.header_all("set-cookie");
    assert_eq!(cookies.len(), 1);
    let cookie = &cookies[0];
    assert!(
        cookie.starts_with(&format!("better-auth.session_token={token}.")),
        "{cookie}"
    );
    assert!(
        cookie.ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        cookie.contains("%3D;"),
        "the signature is URI-encoded: {cookie}"
    );

    let conn = &mut app.db.conn();
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        count(
            conn,
            &format!("\"user\" WHERE id = '{id}' AND email_verified = false")
        ),
        1
    );
    let hash = text(conn, &format!("SELECT password FROM account WHERE user_id = '{id}' AND provider_id = 'credential' AND account_id = '{id}'")).unwrap();
    let (salt, key) = hash.split_once(':').unwrap();
    assert_eq!((salt.len(), key.len()), (32, 128));
    assert_eq!(
        count(
            conn,
            &format!(
                "session WHERE user_id = '{id}' AND token = '{token}' AND expires_at > now() + interval '6 days'"
            )
        ),
        1
    );
}

#[actix_web::test]
async fn sign_up_refuses_a_taken_email_with_422_and_writes_nothing() {
    let mut app = TestApp::new();
    app.sign_up("bob@example.com").await;
    let again = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "B", "email": "BOB@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(again.status, 422);
    assert_eq!(
        again.json(),
        json!({"code": "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "message": "User already exists. Use another email."})
    );
    let conn = &mut app.db.conn();
    assert_eq!(count(conn, "\"user\""), 1);
    assert_eq!(count(conn, "session"), 1);
}

#[actix_web::test]
async fn sign_up_validation_errors_match_better_auth() {
    let mut app = TestApp::new();
    let cases = [
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
            "[body.name] Invalid input: expected string, received undefined",
        ),
        (
            json!({"name": "A", "email": "a@b", "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
            "[body.email] Invalid email address",
        ),
        (
            json!({"name": 7, "email": "a@example.com", "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
            "[body.name] Invalid input: expected string, received number",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "short"}),
            400,
            "PASSWORD_TOO_SHORT",
            "Password too short",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "x".repeat(129)}),
            400,
            "PASSWORD_TOO_LONG",
            "Password too long",
        ),
        // 64 emoji are 128 UTF-16 units: the limit counts as JavaScript does.
        (
            json!({"name": "A", "email": "a@example.com", "password": "😀".repeat(65)}),
            400,
            "PASSWORD_TOO_LONG",
            "Password too long",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": PASSWORD, "callbackURL": "https://evil.example/x"}),
            403,
            "INVALID_CALLBACK_URL",
            "Invalid callbackURL",
        ),
        (
            json!(["not", "an", "object"]),
            400,
            "VALIDATION_ERROR",
            "[body.name] Invalid input: expected string, received undefined",
        ),
    ];
    for (body, status, code, message) in cases {
        let res = app
            .auth(post("/api/auth/sign-up/email", body.clone()))
            .await;
        assert_eq!(res.status, status, "{body}");
        let got = res.json();
        assert_eq!(got["code"], code, "{body}");
        assert!(
            got["message"].as_str().unwrap().starts_with(message),
            "{body}: {got}"
        );
    }
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 0, "nothing written");
}

#[actix_web::test]
async fn sign_up_with_odd_bodies_never_500s() {
    let mut app = TestApp::new();
    let raw = |ct: &str, body: &'static [u8]| {
        TestRequest::post()
            .uri("/api/auth/sign-up/email")
            .insert_header((header::CONTENT_TYPE, ct.to_owned()))
            .set_payload(body)
    };
    let malformed = app.auth(raw("application/json", b"{\"name\":")).await;
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.json(),
        json!({"code": "BAD_REQUEST", "message": "Invalid JSON in request body"})
    );
    let text = app.auth(raw("text/plain", b"hello")).await;
    assert_eq!(text.status, 415);
    assert_eq!(text.json()["code"], "UNSUPPORTED_MEDIA_TYPE");
    let huge = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "x".repeat(200_000), "email": "a@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(huge.status, 413);
    assert_eq!(huge.json()["code"], "PAYLOAD_TOO_LARGE");
    let nul = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "nul\u{0}byte", "email": "n@example.com", "password": PASSWORD}),
        ))
        .await;
    assert!(nul.status < 500, "NUL in a name: {}", nul.status);
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 0);
}

#[actix_web::test]
async fn sign_up_accepts_form_bodies() {
    let mut app = TestApp::new();
    let res = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-up/email")
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(format!(
                    "name=Form&email=form%40example.com&password={PASSWORD}"
                )),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["user"]["email"], "form@example.com");
}

#[actix_web::test]
async fn remember_me_false_gives_a_browser_session_and_a_one_day_row() {
    let mut app = TestApp::new();
    app.sign_up("carol@example.com").await;
    let res = app
        .auth(post(
            "/api/auth/sign-in/email",
            json!({"email": "carol@example.com", "password": PASSWORD, "rememberMe": false}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let cookies = res.header_all("set-cookie");
    assert_eq!(cookies.len(), 2);
    assert!(cookies[0].starts_with("better-auth.session_token="));
    assert!(!cookies[0].contains("Max-Age"), "{}", cookies[0]);
    // HMAC-SHA256("true") under the test config's BETTER_AUTH_SECRET, computed independently.
    assert_eq!(
        cookies[1],
        "better-auth.dont_remember=true.atXN%2Bum0VwbD4z8pfltYZtqflqGIP8vF8jPH%2Btvqlgg%3D; Path=/; HttpOnly; SameSite=Lax"
    );
    let token = res.json()["token"].as_str().unwrap().to_owned();
    let conn = &mut app.db.conn();
    assert_eq!(
        count(
            conn,
            &format!(
                "session WHERE token = '{token}' AND expires_at < now() + interval '25 hours'"
            )
        ),
        1
    );
}

#[actix_web::test]
async fn sign_in_succeeds_and_fails_like_better_auth() {
    let mut app = TestApp::new();
    app.sign_up("dave@example.com").await;

    let wrong = app.sign_in("dave@example.com", "wrong-password!").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"code": "INVALID_EMAIL_OR_PASSWORD", "message": "Invalid email or password"})
    );
    assert!(wrong.header("set-cookie").is_none());

    let unknown = app.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["code"], "INVALID_EMAIL_OR_PASSWORD");

    let invalid = app.sign_in("not-an-email", PASSWORD).await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.json(),
        json!({"code": "INVALID_EMAIL", "message": "Invalid email"})
    );

    let too_long = app.sign_in("dave@example.com", &"x".repeat(129)).await;
    assert_eq!(too_long.json()["code"], "PASSWORD_TOO_LONG");

    let ok = app.sign_in("DAVE@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200);
    let body = ok.json();
    assert_eq!(body["redirect"], false);
    assert!(body.get("url").is_none(), "no url key without callbackURL");
    assert_eq!(body["user"]["email"], "dave@example.com");
    assert!(ok.header("location").is_none());

    let with_callback = app
        .auth(post(
            "/api/auth/sign-in/email",
            json!({"email": "dave@example.com", "password": PASSWORD, "callbackURL": "/dashboard"}),
        ))
        .await;
    assert_eq!(with_callback.status, 200);
    assert_eq!(with_callback.json()["url"], "/dashboard");
    assert_eq!(with_callback.json()["redirect"], true);
    assert_eq!(with_callback.header("location"), Some("/dashboard"));
    assert_eq!(count(&mut app.db.conn(), "session"), 3);
}

#[actix_web::test]
async fn a_password_hash_written_by_better_auth_still_signs_in() {
    let mut app = TestApp::new();
    let conn = &mut app.db.conn();
    // The spec's test vector, as Better Auth stored it (NFKC: "Pässwörd-1").
    exec(
        conn,
        "INSERT INTO \"user\" (id, name, email, email_verified, created_at, updated_at) VALUES ('7Lyx3XsSS1y846nd97RiOMheXnz17uTH', 'Alice', 'legacy@example.com', true, now(), now())",
    );
    exec(
        conn,
        "INSERT INTO account (id, account_id, provider_id, user_id, password, created_at, updated_at) VALUES ('acc1', '7Lyx3XsSS1y846nd97RiOMheXnz17uTH', 'credential', '7Lyx3XsSS1y846nd97RiOMheXnz17uTH', '5b12724e50c8dc8ab9c224fc7b47e80f:e11e3bfa6cc05bcf83630088d77ae32dcb26a9a6c2d38e66f12b4ec7b6ce2a7f4c315fcf451cb1f5d588ab1bca0f0b50a9e2598a8c41ffdde7595590340050cf', now(), now())",
    );
    let decomposed = app
        .sign_in("legacy@example.com", "Pa\u{0308}sswo\u{0308}rd-\u{2460}")
        .await;
    assert_eq!(decomposed.status, 200);
    let composed = app.sign_in("legacy@example.com", "Pässwörd-1").await;
    assert_eq!(composed.status, 200);
}

#[actix_web::test]
async fn required_verification_blocks_sign_in_after_the_password_check() {
    let mut app = TestApp::with_env(&[(
        "SWITCHBOARD__AUTH__EMAIL_AND_PASSWORD__REQUIRE_EMAIL_VERIFICATION",
        "true",
    )]);
    let res = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "E", "email": "erin@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["token"], serde_json::Value::Null);
    assert!(
        res.header("set-cookie").is_none(),
        "no session before verification"
    );

    // A duplicate answers like a new user: nobody learns the address is taken.
    let dup = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "E2", "email": "erin@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(dup.status, 200);
    assert_eq!(dup.json()["user"]["name"], "E2");
    assert_ne!(dup.json()["user"]["id"], res.json()["user"]["id"]);
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 1);

    assert_eq!(
        app.sign_in("erin@example.com", "wrong-password!")
            .await
            .status,
        401
    );
    let blocked = app.sign_in("erin@example.com", PASSWORD).await;
    assert_eq!(blocked.status, 403);
    assert_eq!(
        blocked.json(),
        json!({"code": "EMAIL_NOT_VERIFIED", "message": "Email not verified"})
    );
}

#[actix_web::test]
async fn disabled_sign_up_is_refused() {
    let mut app = TestApp::with_env(&[(
        "SWITCHBOARD__AUTH__EMAIL_AND_PASSWORD__DISABLE_SIGN_UP",
        "true",
    )]);
    let res = app
        .auth(post(
            "/api/auth/sign-up/email",
            json!({"name": "F", "email": "f@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "EMAIL_PASSWORD_SIGN_UP_DISABLED");
}

#[actix_web::test]
async fn login_csrf_checks() {
    let mut app = TestApp::new();
    app.sign_up("gina@example.com").await;
    let body = json!({"email": "gina@example.com", "password": PASSWORD});
    let evil = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-in/email")
                .insert_header((header::ORIGIN, "http://evil.example"))
                .set_json(&body),
        )
        .await;
    assert_eq!(evil.status, 403);
    assert_eq!(
        evil.json(),
        json!({"code": "INVALID_ORIGIN", "message": "Invalid origin"})
    );

    let navigate = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-in/email")
                .insert_header(("sec-fetch-site", "cross-site"))
                .insert_header(("sec-fetch-mode", "navigate"))
                .set_json(&body),
        )
        .await;
    assert_eq!(navigate.status, 403);
    assert_eq!(
        navigate.json()["code"],
        "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED"
    );

    let fetch_without_origin = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-in/email")
                .insert_header(("sec-fetch-mode", "cors"))
                .set_json(&body),
        )
        .await;
    assert_eq!(fetch_without_origin.status, 403);
    assert_eq!(
        fetch_without_origin.json()["code"],
        "MISSING_OR_NULL_ORIGIN"
    );

    let server_to_server = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-in/email")
                .set_json(&body),
        )
        .await;
    assert_eq!(server_to_server.status, 200);
    assert_eq!(
        count(&mut app.db.conn(), "session"),
        2,
        "only the sign-up and the allowed sign-in"
    );
}

#[actix_web::test]
async fn trusted_origins_come_from_cors_origins_too() {
    let mut app = TestApp::with_env(&[("CORS_ORIGINS", "http://localhost:5173")]);
    app.sign_up("hana@example.com").await;
    let res = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-in/email")
                .insert_header((header::ORIGIN, "http://localhost:5173"))
                .insert_header(("sec-fetch-mode", "cors"))
                .set_json(json!({"email": "hana@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn sign_out_deletes_the_session_and_clears_three_cookies() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("ivan@example.com").await;
    let res = app
        .auth(post_with("/api/auth/sign-out", &cookie, json!({})))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"success": true}));
    assert_eq!(
        res.header_all("set-cookie"),
        vec![
            "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
            "better-auth.session_data=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
            "better-auth.dont_remember=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
        ]
    );
    assert_eq!(count(&mut app.db.conn(), "session"), 0);
    assert_eq!(app.session_of(&cookie).await, serde_json::Value::Null);

    // With no session at all it still answers success and clears cookies.
    let anonymous = app
        .auth(TestRequest::post().uri("/api/auth/sign-out"))
        .await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.header_all("set-cookie").len(), 3);
}

#[actix_web::test]
async fn secure_deployments_use_the_secure_prefix() {
    let mut app = TestApp::with_env(&[("BETTER_AUTH_URL", "https://auth.example.test")]);
    let res = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/sign-up/email")
                .insert_header((header::ORIGIN, "https://auth.example.test"))
                .set_json(json!({"name": "S", "email": "s@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status, 200);
    let cookie = res.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("__Secure-better-auth.session_token="),
        "{cookie}"
    );
    assert!(
        cookie.ends_with("; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=Lax"),
        "{cookie}"
    );
    let _ = (ORIGIN, set_cookies(&res), cookie_header(&res));
}

#[actix_web::test]
async fn the_session_records_the_client_address_not_a_spoofed_header() {
    let mut app = TestApp::with_env(&[(
        "SWITCHBOARD__AUTH__RATE_LIMIT__TRUSTED_PROXIES",
        "10.0.0.0/8",
    )]);
    app.sign_up("ip@example.com").await;
    let sign_in = |peer: &str| {
        TestRequest::post()
            .uri("/api/auth/sign-in/email")
            .peer_addr(peer.parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 198.51.100.7"))
            .set_json(json!({"email": "ip@example.com", "password": PASSWORD}))
    };
    let direct = app.auth(sign_in("203.0.113.9:5555")).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let proxied = app.auth(sign_in("10.1.2.3:443")).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let conn = &mut app.db.conn();
    assert_eq!(
        text(
            conn,
            &format!("SELECT ip_address FROM session WHERE token = '{direct}'")
        )
        .as_deref(),
        Some("203.0.113.9"),
        "an untrusted peer's X-Forwarded-For is ignored"
    );
    assert_eq!(
        text(
            conn,
            &format!("SELECT ip_address FROM session WHERE token = '{proxied}'")
        )
        .as_deref(),
        Some("198.51.100.7"),
        "behind a trusted proxy, the nearest untrusted hop"
    );
}
