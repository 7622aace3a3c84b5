//! get-session's in-memory cache (`auth::session_cache`): what another instance changes shows
//! within the TTL, what this instance changes shows at once, `disableCookieCache` and a zero
//! TTL read the database. "Another instance" is a change made straight in the database.

use crate::common::TestApp;
use crate::common::app::Seen;
use crate::common::auth::{PASSWORD, cookie_header, get_with, post_with};
use crate::common::rows::exec;
use chrono::Duration;
use serde_json::{Value, json};

/// The cookie header and the session token of a sign-up or sign-in response.
fn session(seen: &Seen) -> (String, String) {
    let token = seen.json()["token"].as_str().expect("a token").to_owned();
    (cookie_header(seen), token)
}

/// Revokes the session the way another instance would: in the database only.
fn revoke_elsewhere(app: &mut TestApp, token: &str) {
    exec(
        &mut app.db.conn(),
        &format!("DELETE FROM session WHERE token = '{token}'"),
    );
}

#[actix_web::test]
async fn another_instances_revoke_shows_within_the_ttl() {
    let mut app = TestApp::new();
    let (cookie, token) = session(&app.sign_up("ann@example.com").await);
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "ann@example.com"
    );
    revoke_elsewhere(&mut app, &token);

    app.clock.advance(Duration::milliseconds(999));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json()["user"]["email"],
        "ann@example.com",
        "read 999 ms ago: answered from memory"
    );

    app.clock.advance(Duration::milliseconds(1));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(res.body, b"null", "1 s old: read again, and gone");
    assert_eq!(res.header_all("set-cookie").len(), 3, "cookies cleared");
}

#[actix_web::test]
async fn disable_cookie_cache_reads_the_database() {
    let mut app = TestApp::new();
    let (cookie, token) = session(&app.sign_up("ben@example.com").await);
    assert_ne!(app.session_of(&cookie).await, Value::Null);
    revoke_elsewhere(&mut app, &token);

    let res = app
        .auth(get_with(
            "/api/auth/get-session?disableCookieCache=true",
            &cookie,
        ))
        .await;
    assert_eq!(res.body, b"null");
    // What the database said replaced what was remembered.
    assert_eq!(app.session_of(&cookie).await, Value::Null);
}

#[actix_web::test]
async fn a_zero_ttl_reads_the_database_every_time() {
    let mut app = TestApp::with_env(&[("SWITCHBOARD__AUTH__SESSION__CACHE_TTL_MS", "0")]);
    let (cookie, token) = session(&app.sign_up("cat@example.com").await);
    assert_ne!(app.session_of(&cookie).await, Value::Null);
    revoke_elsewhere(&mut app, &token);
    assert_eq!(app.session_of(&cookie).await, Value::Null);
}

#[actix_web::test]
async fn changes_on_this_instance_show_at_once() {
    let mut app = TestApp::with_env(&[("SWITCHBOARD__AUTH__USER__DELETE_USER_ENABLED", "true")]);
    let first = app.signed_in("dan@example.com").await;
    let second = cookie_header(&app.sign_in("dan@example.com", PASSWORD).await);
    let (third, third_token) = session(&app.sign_in("dan@example.com", PASSWORD).await);
    for cookie in [&first, &second, &third] {
        assert_eq!(app.session_of(cookie).await["user"]["name"], "Alice");
    }

    let res = app
        .auth(post_with(
            "/api/auth/update-user",
            &first,
            json!({"name": "Dan"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    for cookie in [&first, &second] {
        assert_eq!(
            app.session_of(cookie).await["user"]["name"],
            "Dan",
            "every session of the user"
        );
    }

    let res = app
        .auth(post_with(
            "/api/auth/revoke-session",
            &first,
            json!({"token": third_token}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&third).await, Value::Null, "revoke-session");

    let res = app
        .auth(post_with(
            "/api/auth/revoke-other-sessions",
            &first,
            json!({}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        app.session_of(&second).await,
        Value::Null,
        "revoke-other-sessions"
    );

    let res = app
        .auth(post_with("/api/auth/sign-out", &first, json!({})))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&first).await, Value::Null, "sign-out");

    let one = cookie_header(&app.sign_in("dan@example.com", PASSWORD).await);
    let two = cookie_header(&app.sign_in("dan@example.com", PASSWORD).await);
    assert_ne!(app.session_of(&two).await, Value::Null);
    let res = app
        .auth(post_with("/api/auth/revoke-sessions", &one, json!({})))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&two).await, Value::Null, "revoke-sessions");

    let again = cookie_header(&app.sign_in("dan@example.com", PASSWORD).await);
    let other = cookie_header(&app.sign_in("dan@example.com", PASSWORD).await);
    assert_ne!(app.session_of(&other).await, Value::Null);
    let res = app
        .auth(post_with(
            "/api/auth/change-password",
            &again,
            json!({"currentPassword": PASSWORD, "newPassword": "another-password-1",
                   "revokeOtherSessions": true}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        app.session_of(&other).await,
        Value::Null,
        "change-password revoking the others"
    );

    let fresh = cookie_header(&res);
    assert_ne!(app.session_of(&fresh).await, Value::Null);
    let res = app
        .auth(post_with(
            "/api/auth/delete-user",
            &fresh,
            json!({"password": "another-password-1"}),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(app.session_of(&fresh).await, Value::Null, "delete-user");
}

#[actix_web::test]
async fn a_session_extended_by_get_session_is_remembered_extended() {
    let mut app = TestApp::new();
    let (cookie, token) = session(&app.sign_up("eve@example.com").await);
    app.clock.advance(Duration::days(1));
    let extended = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert!(extended.header("set-cookie").is_some(), "extended");
    let expires = extended.json()["session"]["expiresAt"].clone();
    // Only memory can answer now, and it must hold the extended session.
    revoke_elsewhere(&mut app, &token);
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert!(res.header("set-cookie").is_none(), "not extended twice");
    assert_eq!(res.json()["session"]["expiresAt"], expires);
}

#[actix_web::test]
async fn a_session_revoked_elsewhere_is_not_extended_from_memory() {
    let mut app = TestApp::new();
    let (cookie, token) = session(&app.sign_up("fay@example.com").await);
    // Read half a second before the daily extension falls due...
    app.clock
        .advance(Duration::days(1) - Duration::milliseconds(500));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert!(res.header("set-cookie").is_none(), "not due yet");
    // ...revoked by another instance, then asked for again once it is due, from memory.
    revoke_elsewhere(&mut app, &token);
    app.clock.advance(Duration::milliseconds(500));
    let res = app.auth(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(
        res.status, 401,
        "Better Auth's answer when the extension finds no row"
    );
    assert_eq!(res.body, b"null", "nothing left to extend");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(
        res.header("set-auth-jwt").is_none(),
        "no JWT for a revoked session"
    );
    assert_eq!(res.header_all("set-cookie").len(), 3, "cookies cleared");
}
