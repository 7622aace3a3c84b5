//! get-session and the session list and revocation endpoints, with time moved by hand.

use crate::common::TestApp;
use crate::common::auth::{ORIGIN, PASSWORD, cookie_header, get_with, post, post_with};
use crate::common::rows::{count, exec};
use actix_web::http::header;
use actix_web::test::TestRequest;
use chrono::Duration;
use serde_json::{Value, json};

#[actix_web::test]
async fn get_session_is_null_without_a_valid_cookie() {
    let mut app = TestApp::new();
    let none = app
        .auth(TestRequest::get().uri("/api/auth/get-session"))
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body, b"null");
    assert_eq!(none.header("cache-control"), Some("no-store"));
    assert_eq!(none.header("pragma"), Some("no-cache"));

    let cookie = app.signed_in("ann@example.com").await;
    let forged = cookie.replace("session_token=", "session_token=X");
    let res = app.auth(get_with("/api/auth/get-session", &forged)).await;
    assert_eq!(res.body, b"null");
    assert!(
        res.header("set-cookie").is_none(),
        "a bad signature clears nothing"
    );

    let unsigned = cookie.split('.').next().unwrap().to_owned();
    assert_eq!(app.session_of(&unsigned).await, Value::Null);

    let bearer = app
        .auth(
            TestRequest::get()
                .uri("/api/auth/get-session")
                .insert_header((header::AUTHORIZATION, "Bearer whatever")),
        )
        .await;
    assert_eq!(bearer.body, b"null", "no bearer plugin");
}

#[actix_web::test]
async fn get_session_returns_the_session_and_user() {
    let mut app = TestApp::new();
    let signup = app.sign_up("ben@example.com").await;
    let token = signup.json()["token"].as_str().unwrap().to_owned();
    let res = app
        .auth(get_with("/api/auth/get-session", &cookie_header(&signup)))
        .await;
    assert_eq!(res.status, 200);
    assert!(res.header("set-cookie").is_none(), "nothing to refresh yet");
    let body = res.json();
    assert_eq!(body["user"]["email"], "ben@example.com");
    let session = &body["session"];
    assert_eq!(session["token"], token);
    assert_eq!(session["userId"], body["user"]["id"]);
    for key in [
        "expiresAt",
        "createdAt",
        "updatedAt",
        "ipAddress",
        "userAgent",
        "id",
    ] {
        assert!(
            session.get(key).is_some(),
            "session.{key} missing: {session}"
        );
    }
}

#[actix_web::test]
async fn get_session_extends_the_session_once_a_day() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("cat@example.com").await;
    let before = app.session_of(&cookie).await["session"]["expiresAt"].clone();

    app.clock.advance(Duration::hours(23));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert!(
        res.header("set-cookie").is_none(),
        "less than update_age: no refresh"
    );
    assert_eq!(res.json()["session"]["expiresAt"], before);

    app.clock.advance(Duration::hours(2));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    let set = res.header("set-cookie").expect("refreshed cookie");
    assert!(set.contains("Max-Age=604800"), "{set}");
    assert_eq!(cookie_header(&res), cookie, "same token re-issued");
    let after = res.json()["session"]["expiresAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected =
        (app.clock_now() + Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(after, expected);

    // disableRefresh: any non-empty value counts as true (zod's coerced boolean).
    app.clock.advance(Duration::days(2));
    let res = app
        .auth(get_with(
            "/api/auth/get-session?disableRefresh=false",
            &cookie,
        ))
        .await;
    assert!(res.header("set-cookie").is_none());
    assert_eq!(res.json()["session"]["expiresAt"], after);
}

#[actix_web::test]
async fn dont_remember_sessions_are_never_extended() {
    let mut app = TestApp::new();
    app.sign_up("dan@example.com").await;
    let res = app
        .auth(post(
            "/api/auth/sign-in/email",
            json!({"email": "dan@example.com", "password": PASSWORD, "rememberMe": false}),
        ))
        .await;
    let cookie = cookie_header(&res);
    assert!(cookie.contains("dont_remember"));
    app.clock.advance(Duration::hours(20));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert!(res.header("set-cookie").is_none());
    assert_eq!(res.json()["user"]["email"], "dan@example.com");
}

#[actix_web::test]
async fn an_expired_session_is_deleted_and_its_cookies_cleared() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("eve@example.com").await;
    app.clock.advance(Duration::days(8));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(res.body, b"null");
    assert_eq!(res.header_all("set-cookie").len(), 3);
    assert_eq!(count(&mut app.db.conn(), "session"), 0);
}

#[actix_web::test]
async fn post_get_session_is_405_with_better_auths_code() {
    let mut app = TestApp::new();
    let res = app.auth(post("/api/auth/get-session", json!({}))).await;
    assert_eq!(res.status, 405);
    assert_eq!(
        res.json()["code"],
        "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED"
    );
}

#[actix_web::test]
async fn list_sessions_needs_a_fresh_session() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("fay@example.com").await;
    app.sign_in("fay@example.com", PASSWORD).await;
    let other = app.signed_in("gus@example.com").await;

    let res = app.auth(get_with("/api/auth/list-sessions", &cookie)).await;
    assert_eq!(res.status, 200);
    let sessions = res.json();
    assert_eq!(
        sessions.as_array().unwrap().len(),
        2,
        "only fay's: {sessions}"
    );
    assert!(
        sessions[0]["token"].is_string(),
        "tokens are included, as in Better Auth"
    );

    let anonymous = app
        .auth(TestRequest::get().uri("/api/auth/list-sessions"))
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.json(),
        json!({"code": "UNAUTHORIZED", "message": "Unauthorized"})
    );

    app.clock.advance(Duration::hours(25));
    let stale = app.auth(get_with("/api/auth/list-sessions?", &other)).await;
    assert_eq!(stale.status, 403);
    assert_eq!(
        stale.json(),
        json!({"code": "SESSION_NOT_FRESH", "message": "Session is not fresh"})
    );
}

#[actix_web::test]
async fn revoke_session_only_touches_the_callers_sessions() {
    let mut app = TestApp::new();
    let mine = app.sign_up("hal@example.com").await;
    let cookie = cookie_header(&mine);
    let second = app.sign_in("hal@example.com", PASSWORD).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = app.sign_up("ida@example.com").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app
        .auth(post_with(
            "/api/auth/revoke-session",
            &cookie,
            json!({"token": theirs}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(
        count(
            &mut app.db.conn(),
            &format!("session WHERE token = '{theirs}'")
        ),
        1,
        "not mine to revoke"
    );

    let res = app
        .auth(post_with(
            "/api/auth/revoke-session",
            &cookie,
            json!({"token": second}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("set-cookie").is_none(),
        "another session: cookies stay"
    );
    assert_eq!(
        count(
            &mut app.db.conn(),
            &format!("session WHERE token = '{second}'")
        ),
        0
    );

    let own = mine.json()["token"].as_str().unwrap().to_owned();
    let res = app
        .auth(post_with(
            "/api/auth/revoke-session",
            &cookie,
            json!({"token": own}),
        ))
        .await;
    assert_eq!(
        res.header_all("set-cookie").len(),
        3,
        "own session: cookies cleared"
    );
    assert_eq!(app.session_of(&cookie).await, Value::Null);

    let missing = app
        .auth(post_with("/api/auth/revoke-session", &cookie, json!({})))
        .await;
    assert_eq!(
        missing.status, 401,
        "the revoked session no longer authenticates"
    );
}

#[actix_web::test]
async fn revoke_sessions_and_revoke_other_sessions() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("jo@example.com").await;
    app.sign_in("jo@example.com", PASSWORD).await;
    app.sign_in("jo@example.com", PASSWORD).await;
    app.signed_in("kim@example.com").await;

    let res = app
        .auth(post_with(
            "/api/auth/revoke-other-sessions",
            &cookie,
            json!({}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert!(res.header("set-cookie").is_none());
    let conn = &mut app.db.conn();
    assert_eq!(
        count(
            conn,
            "session s JOIN \"user\" u ON u.id = s.user_id WHERE u.email = 'jo@example.com'"
        ),
        1
    );
    assert_ne!(
        app.session_of(&cookie).await,
        Value::Null,
        "the current session survives"
    );

    let res = app
        .auth(post_with("/api/auth/revoke-sessions", &cookie, json!({})))
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(res.header_all("set-cookie").len(), 3);
    assert_eq!(
        count(
            conn,
            "session s JOIN \"user\" u ON u.id = s.user_id WHERE u.email = 'jo@example.com'"
        ),
        0
    );
    assert_eq!(count(conn, "session"), 1, "kim's session is untouched");
}

#[actix_web::test]
async fn cookie_writes_from_untrusted_origins_are_refused() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("lee@example.com").await;
    let no_origin = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/revoke-sessions")
                .insert_header((header::COOKIE, cookie.clone()))
                .set_json(json!({})),
        )
        .await;
    assert_eq!(no_origin.status, 403);
    assert_eq!(
        no_origin.json(),
        json!({"code": "MISSING_OR_NULL_ORIGIN", "message": "Missing or null Origin"})
    );

    let evil = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/revoke-sessions")
                .insert_header((header::COOKIE, cookie.clone()))
                .insert_header((header::ORIGIN, "https://evil.example"))
                .set_json(json!({})),
        )
        .await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.json()["code"], "INVALID_ORIGIN");

    let referer = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/revoke-other-sessions")
                .insert_header((header::COOKIE, cookie.clone()))
                .insert_header((header::REFERER, format!("{ORIGIN}/settings")))
                .set_json(json!({})),
        )
        .await;
    assert_eq!(referer.status, 200, "a trusted Referer alone passes");
    let conn = &mut app.db.conn();
    assert_eq!(
        count(conn, "session"),
        1,
        "the refused requests revoked nothing"
    );
    exec(conn, "SELECT 1");
}

#[actix_web::test]
async fn set_auth_jwt_is_reused_briefly_for_the_same_user_data() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("jwt@example.com").await;
    let jwt = |res: &crate::common::Seen| res.header("set-auth-jwt").unwrap().to_owned();
    let first = jwt(&app.auth(get_with("/api/auth/get-session", &cookie)).await);
    assert_eq!(first.split('.').count(), 3);
    app.clock.advance(Duration::seconds(10));
    let again = jwt(&app.auth(get_with("/api/auth/get-session", &cookie)).await);
    assert_eq!(
        again, first,
        "same user data within the reuse window: same token"
    );

    app.auth(post_with(
        "/api/auth/update-user",
        &cookie,
        json!({"name": "Renamed"}),
    ))
    .await;
    let renamed = jwt(&app.auth(get_with("/api/auth/get-session", &cookie)).await);
    assert_ne!(
        renamed, first,
        "changed user data: a new token with the new claims"
    );

    app.clock.advance(Duration::seconds(31));
    let later = jwt(&app.auth(get_with("/api/auth/get-session", &cookie)).await);
    assert_ne!(later, renamed, "past the reuse window: a fresh token");
}
