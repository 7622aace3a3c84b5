//! get-session's in-memory cache (`auth::session_cache`): what another instance changes shows
//! within the TTL, what this instance changes shows at once, `disableCookieCache` and a zero
//! TTL read the database. "Another instance" is a change made straight in the database.

use crate::common::TestApp;
use crate::common::app::Seen;
use crate::common::auth::{PASSWORD, cookie_header, get_with, post_with};
use crate::common::mail::{ResendStandIn, link_in, path_of};
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

/// Every operation of the auth role's OpenAPI document, by what it does to `session` and `user`
/// rows. A new route must be added to one list; one that changes a session or a user must also
/// get a case in `every_change_shows_in_the_next_get_session` (or, for the GitHub callback,
/// `github::a_github_sign_in_that_verifies_the_user_shows_in_get_session`).
const CHANGES: &[&str] = &[
    "POST /api/auth/sign-out",
    "POST /api/auth/revoke-session",
    "POST /api/auth/revoke-sessions",
    "POST /api/auth/revoke-other-sessions",
    "POST /api/auth/update-user",
    "POST /api/auth/change-password",
    "POST /api/auth/change-email",
    "POST /api/auth/delete-user",
    "GET /api/auth/verify-email",
    "POST /api/auth/reset-password",
    "GET /api/auth/callback/{provider}",
];
/// Only insert new rows: nothing of them can be remembered yet.
const CREATES_ONLY: &[&str] = &[
    "POST /api/auth/sign-up/email",
    "POST /api/auth/sign-in/email",
];
/// The reader itself: extends or deletes (expired) the session it just read; covered by
/// `a_session_extended_by_get_session_is_remembered_extended` and the tests above it.
const READER: &[&str] = &["GET /api/auth/get-session"];
/// Write no `session` or `user` row (account, verification rows or nothing at all).
const NO_SESSION_OR_USER_WRITE: &[&str] = &[
    "GET /api/auth/ok",
    "GET /api/auth/error",
    "GET /api/auth/list-sessions",
    "GET /api/auth/token",
    "POST /api/auth/sign-in/social",
    "POST /api/auth/callback/{provider}",
    "POST /api/auth/link-social",
    "GET /api/auth/list-accounts",
    "POST /api/auth/unlink-account",
    "POST /api/auth/send-verification-email",
    "POST /api/auth/request-password-reset",
    "POST /api/auth/forget-password",
    "GET /api/auth/reset-password/{token}",
    "GET /api/auth/jwks",
    "GET /.well-known/jwks.json",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
];

#[actix_web::test]
async fn every_auth_route_is_classified_for_the_session_cache() {
    let mut app = TestApp::new();
    let doc = app
        .get(switchboard::platform::role::Role::Auth, "/openapi.json")
        .await
        .json();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let known: Vec<&str> = [CHANGES, CREATES_ONLY, READER, NO_SESSION_OR_USER_WRITE].concat();
    let unclassified: Vec<&String> = ops
        .iter()
        .filter(|op| !known.contains(&op.as_str()))
        .collect();
    assert!(
        unclassified.is_empty(),
        "routes the session-cache test does not know: {unclassified:?}"
    );
}

/// Waits for a mail to `to` whose link contains `part`, and returns the link.
async fn mailed_link(resend: &ResendStandIn, to: &str, part: &str) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = resend
            .emails()
            .await
            .iter()
            .filter(|m| m["to"] == json!([to]))
            .map(link_in)
            .find(|l| l.contains(part));
        if let Some(link) = found {
            return link;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail to {to} with {part}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Every route in [`CHANGES`] (but the GitHub callback, tested with its stand-in): with the
/// session remembered by a get-session just before, the get-session right after shows the change.
#[actix_web::test]
async fn every_change_shows_in_the_next_get_session() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[
        ("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true"),
        (
            "SWITCHBOARD__AUTH__USER__UPDATE_EMAIL_WITHOUT_VERIFICATION",
            "true",
        ),
        ("SWITCHBOARD__AUTH__USER__DELETE_USER_ENABLED", "true"),
        (
            "SWITCHBOARD__AUTH__PASSWORD_RESET__REVOKE_SESSIONS_ON_RESET",
            "true",
        ),
    ]);
    let mut covered: Vec<&str> = Vec::new();
    let (cookie, _) = session(&app.sign_up("gus@example.com").await);
    let user = |v: Value| v["user"].clone();

    // update-user
    assert_eq!(user(app.session_of(&cookie).await)["name"], "Alice");
    let res = app
        .auth(post_with(
            "/api/auth/update-user",
            &cookie,
            json!({"name": "Gus"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(user(app.session_of(&cookie).await)["name"], "Gus");
    covered.push("POST /api/auth/update-user");

    // change-email, at once (unverified user)
    let res = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "gus2@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        user(app.session_of(&cookie).await)["email"],
        "gus2@example.com"
    );

    // verify-email (the new address's verification link)
    let link = mailed_link(&resend, "gus2@example.com", "/verify-email").await;
    assert_eq!(user(app.session_of(&cookie).await)["emailVerified"], false);
    assert_eq!(
        app.auth(get_with(&path_of(&link), &cookie)).await.status,
        302
    );
    assert_eq!(user(app.session_of(&cookie).await)["emailVerified"], true);

    // change-email through the link to the new address (verified user)
    let res = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "gus3@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let link = mailed_link(&resend, "gus3@example.com", "/verify-email").await;
    assert_eq!(
        user(app.session_of(&cookie).await)["email"],
        "gus2@example.com"
    );
    assert_eq!(
        app.auth(get_with(&path_of(&link), &cookie)).await.status,
        302
    );
    assert_eq!(
        user(app.session_of(&cookie).await)["email"],
        "gus3@example.com"
    );
    covered.push("POST /api/auth/change-email");
    covered.push("GET /api/auth/verify-email");

    // revoke-session, revoke-other-sessions
    let email = "gus3@example.com";
    let (other, other_token) = session(&app.sign_in(email, PASSWORD).await);
    assert_ne!(app.session_of(&other).await, Value::Null);
    let res = app
        .auth(post_with(
            "/api/auth/revoke-session",
            &cookie,
            json!({"token": other_token}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&other).await, Value::Null);
    covered.push("POST /api/auth/revoke-session");

    let (other, _) = session(&app.sign_in(email, PASSWORD).await);
    assert_ne!(app.session_of(&other).await, Value::Null);
    let res = app
        .auth(post_with(
            "/api/auth/revoke-other-sessions",
            &cookie,
            json!({}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&other).await, Value::Null);
    covered.push("POST /api/auth/revoke-other-sessions");

    // change-password, signing out everywhere else
    let (other, _) = session(&app.sign_in(email, PASSWORD).await);
    assert_ne!(app.session_of(&other).await, Value::Null);
    let res = app
        .auth(post_with(
            "/api/auth/change-password",
            &cookie,
            json!({"currentPassword": PASSWORD, "newPassword": "second-password-2",
                   "revokeOtherSessions": true}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&other).await, Value::Null);
    assert_eq!(app.session_of(&cookie).await, Value::Null);
    let cookie = cookie_header(&res);
    covered.push("POST /api/auth/change-password");

    // reset-password (revoke_sessions_on_reset)
    assert_ne!(app.session_of(&cookie).await, Value::Null);
    let res = app
        .auth(crate::common::auth::post(
            "/api/auth/request-password-reset",
            json!({"email": email, "redirectTo": "/reset"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let link = mailed_link(&resend, email, "/reset-password/").await;
    let token = link.split("/reset-password/").nth(1).unwrap();
    let token = token.split('?').next().unwrap();
    let res = app
        .auth(crate::common::auth::post(
            "/api/auth/reset-password",
            json!({"newPassword": PASSWORD, "token": token}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&cookie).await, Value::Null);
    covered.push("POST /api/auth/reset-password");

    // sign-out
    let cookie = cookie_header(&app.sign_in(email, PASSWORD).await);
    assert_ne!(app.session_of(&cookie).await, Value::Null);
    let res = app
        .auth(post_with("/api/auth/sign-out", &cookie, json!({})))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&cookie).await, Value::Null);
    covered.push("POST /api/auth/sign-out");

    // revoke-sessions
    let cookie = cookie_header(&app.sign_in(email, PASSWORD).await);
    let other = cookie_header(&app.sign_in(email, PASSWORD).await);
    assert_ne!(app.session_of(&other).await, Value::Null);
    let res = app
        .auth(post_with("/api/auth/revoke-sessions", &cookie, json!({})))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&other).await, Value::Null);
    covered.push("POST /api/auth/revoke-sessions");

    // delete-user
    let cookie = cookie_header(&app.sign_in(email, PASSWORD).await);
    assert_ne!(app.session_of(&cookie).await, Value::Null);
    let res = app
        .auth(post_with(
            "/api/auth/delete-user",
            &cookie,
            json!({"password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session_of(&cookie).await, Value::Null);
    covered.push("POST /api/auth/delete-user");

    covered.push("GET /api/auth/callback/{provider}");
    covered.sort();
    let mut all = CHANGES.to_vec();
    all.sort();
    assert_eq!(covered, all, "every route that changes a session or user");
}
