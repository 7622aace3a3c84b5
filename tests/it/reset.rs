//! Password reset end to end (spec §6.13–6.15, §8.2): the request, the mailed link, the new
//! password; single use, one hour, no enumeration.

use crate::common::TestApp;
use crate::common::auth::{PASSWORD, cookie_header, post};
use crate::common::http::LiveServer;
use crate::common::mail::{ResendStandIn, link_in, path_of};
use crate::common::rows::{count, exec, text};
use actix_web::test::TestRequest;
use chrono::Duration;
use serde_json::{Value, json};
use switchboard::platform::role::Role;

const NEW_PASSWORD: &str = "brand-new-password-42";
const ANSWER: &str = "If this email exists in our system, check your email for the reset link";

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path)
}

fn reset(token: &str, password: &str) -> TestRequest {
    post(
        "/api/auth/reset-password",
        json!({"newPassword": password, "token": token}),
    )
}

/// Signs `email` up, asks for a reset, and returns the mailed link.
async fn reset_link(app: &mut TestApp, resend: &ResendStandIn, email: &str, n: usize) -> String {
    let res = app
        .auth(post(
            "/api/auth/request-password-reset",
            json!({"email": email, "redirectTo": "/reset"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let mails = resend.mail_to(email, n).await;
    link_in(mails.last().unwrap())
}

/// The token in a reset link: `…/reset-password/<token>?callbackURL=…`.
fn token_of(link: &str) -> String {
    link.split("/reset-password/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn known_and_unknown_addresses_get_the_same_answer() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("amy@example.com").await;
    let mut answers = Vec::new();
    for (path, email) in [
        ("/api/auth/request-password-reset", "nobody@example.com"),
        ("/api/auth/forget-password", "nobody@example.com"),
        ("/api/auth/request-password-reset", "AMY@example.com"),
    ] {
        let res = app
            .auth(post(path, json!({"email": email, "redirectTo": "/reset"})))
            .await;
        answers.push((res.status, res.json(), res.header("set-cookie").is_some()));
    }
    for answer in &answers {
        assert_eq!(
            answer,
            &(200, json!({"status": true, "message": ANSWER}), false)
        );
    }
    // The unknown address went first: had it been mailed, that mail would be here.
    let mails = resend.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0]["to"], json!(["amy@example.com"]));

    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "verification"), 1);
    let identifier = text(&mut conn, "SELECT identifier FROM verification").unwrap();
    let token = identifier.strip_prefix("reset-password:").unwrap();
    assert_eq!(token.len(), 24);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        text(&mut conn, "SELECT value FROM verification"),
        text(&mut conn, "SELECT id FROM \"user\"")
    );
    let lifetime = text(
        &mut conn,
        "SELECT extract(epoch FROM expires_at - created_at)::int FROM verification",
    );
    assert_eq!(lifetime.as_deref(), Some("3600"));
    assert_eq!(
        link_in(&mails[0]),
        format!("http://localhost:5001/api/auth/reset-password/{token}?callbackURL=%2Freset")
    );
}

#[actix_web::test]
async fn request_errors() {
    let mut app = TestApp::new();
    let evil = app
        .auth(post(
            "/api/auth/request-password-reset",
            json!({"email": "a@example.com", "redirectTo": "https://evil.example/reset"}),
        ))
        .await;
    assert_eq!(evil.status, 403);
    assert_eq!(
        evil.json(),
        json!({"code": "INVALID_REDIRECT_URL", "message": "Invalid redirectURL"})
    );
    let invalid = app
        .auth(post(
            "/api/auth/request-password-reset",
            json!({"email": "nope"}),
        ))
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.json()["message"],
        "[body.email] Invalid email address"
    );

    let mut off = TestApp::with_env(&[("SWITCHBOARD__AUTH__PASSWORD_RESET__ENABLED", "false")]);
    for path in [
        "/api/auth/request-password-reset",
        "/api/auth/forget-password",
    ] {
        let res = off
            .auth(post(path, json!({"email": "a@example.com"})))
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(
            res.json(),
            json!({"code": "RESET_PASSWORD_DISABLED", "message": "Reset password isn't enabled"})
        );
    }
}

#[actix_web::test]
async fn the_link_redirects_to_the_app_with_the_token() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[("CORS_ORIGINS", "http://localhost:5173")]);
    app.sign_up("bo@example.com").await;
    let link = reset_link(&mut app, &resend, "bo@example.com", 1).await;
    let token = token_of(&link);

    let clicked = app.auth(get(&path_of(&link))).await;
    assert_eq!(clicked.status, 302);
    assert_eq!(
        clicked.header("location"),
        Some(format!("http://localhost:5001/reset?token={token}").as_str()),
        "a relative callback lands on the auth server's origin, as Better Auth's does"
    );
    let absolute = app
        .auth(get(&format!(
            "/api/auth/reset-password/{token}?callbackURL=http%3A%2F%2Flocalhost%3A5173%2Freset%3Fstep%3D2"
        )))
        .await;
    assert_eq!(
        absolute.header("location"),
        Some(format!("http://localhost:5173/reset?step=2&token={token}").as_str())
    );
    let bad = app
        .auth(get(
            "/api/auth/reset-password/not-a-token?callbackURL=http%3A%2F%2Flocalhost%3A5173%2Freset",
        ))
        .await;
    assert_eq!(bad.status, 302);
    assert_eq!(
        bad.header("location"),
        Some("http://localhost:5173/reset?error=INVALID_TOKEN")
    );
    let empty = app
        .auth(get(&format!(
            "/api/auth/reset-password/{token}?callbackURL="
        )))
        .await;
    assert_eq!(
        empty.header("location"),
        Some("http://localhost:5001/api/auth/error?error=INVALID_TOKEN")
    );
    let missing = app
        .auth(get(&format!("/api/auth/reset-password/{token}")))
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json()["message"],
        "[query.callbackURL] Invalid input: expected string, received undefined"
    );
    let evil = app
        .auth(get(&format!(
            "/api/auth/reset-password/{token}?callbackURL=https%3A%2F%2Fevil.example"
        )))
        .await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.json()["code"], "INVALID_CALLBACK_URL");

    // Following the link does not use the token up.
    assert_eq!(app.auth(reset(&token, NEW_PASSWORD)).await.status, 200);
}

#[actix_web::test]
async fn a_token_resets_once() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    let cookie = app.signed_in("cy@example.com").await;
    let token = token_of(&reset_link(&mut app, &resend, "cy@example.com", 1).await);

    let short = app.auth(reset(&token, "short")).await;
    assert_eq!(short.status, 400);
    assert_eq!(short.json()["code"], "PASSWORD_TOO_SHORT");

    let done = app.auth(reset(&token, NEW_PASSWORD)).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.json(), json!({"status": true}));
    assert!(done.header("set-cookie").is_none(), "no session, no cookie");
    assert_eq!(count(&mut app.db.conn(), "verification"), 0);

    let reused = app.auth(reset(&token, "another-password-9")).await;
    assert_eq!(reused.status, 400);
    assert_eq!(
        reused.json(),
        json!({"code": "INVALID_TOKEN", "message": "Invalid token"})
    );

    assert_eq!(app.sign_in("cy@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        app.sign_in("cy@example.com", NEW_PASSWORD).await.status,
        200
    );
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "cy@example.com",
        "other sessions stay by default"
    );
}

#[actix_web::test]
async fn token_errors() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("dee@example.com").await;
    for body in [
        json!({"newPassword": NEW_PASSWORD}),
        json!({"newPassword": NEW_PASSWORD, "token": ""}),
        json!({"newPassword": NEW_PASSWORD, "token": "made-up-token"}),
    ] {
        let res = app
            .auth(post("/api/auth/reset-password", body.clone()))
            .await;
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(res.json()["code"], "INVALID_TOKEN", "{body}");
    }
    let no_password = app
        .auth(post("/api/auth/reset-password", json!({"token": "x"})))
        .await;
    assert_eq!(no_password.status, 400);
    assert_eq!(no_password.json()["code"], "VALIDATION_ERROR");

    // The token may come in the query instead.
    let token = token_of(&reset_link(&mut app, &resend, "dee@example.com", 1).await);
    let res = app
        .auth(post(
            &format!("/api/auth/reset-password?token={token}"),
            json!({"newPassword": NEW_PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn a_token_expires_after_an_hour() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("eve@example.com").await;
    let link = reset_link(&mut app, &resend, "eve@example.com", 1).await;
    let token = token_of(&link);
    app.clock.advance(Duration::seconds(3599));
    assert_eq!(
        app.auth(get(&path_of(&link))).await.header("location"),
        Some(format!("http://localhost:5001/reset?token={token}").as_str())
    );
    app.clock.advance(Duration::seconds(1));
    let clicked = app.auth(get(&path_of(&link))).await;
    assert_eq!(
        clicked.header("location"),
        Some("http://localhost:5001/reset?error=INVALID_TOKEN")
    );
    let res = app.auth(reset(&token, NEW_PASSWORD)).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "INVALID_TOKEN");
    assert_eq!(app.sign_in("eve@example.com", PASSWORD).await.status, 200);
    // Expired rows are purged by lookups, at most once a minute.
    assert_eq!(count(&mut app.db.conn(), "verification"), 1);
    app.clock.advance(Duration::seconds(60));
    assert_eq!(app.auth(reset(&token, NEW_PASSWORD)).await.status, 400);
    assert_eq!(count(&mut app.db.conn(), "verification"), 0);
}

#[actix_web::test]
async fn reset_can_sign_out_everywhere() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[(
        "SWITCHBOARD__AUTH__PASSWORD_RESET__REVOKE_SESSIONS_ON_RESET",
        "true",
    )]);
    let cookie = app.signed_in("fay@example.com").await;
    app.sign_in("fay@example.com", PASSWORD).await;
    assert_eq!(count(&mut app.db.conn(), "session"), 2);
    // Read once, so get-session remembers it: the reset must make it forget.
    assert_ne!(app.session_of(&cookie).await, Value::Null);
    let token = token_of(&reset_link(&mut app, &resend, "fay@example.com", 1).await);
    assert_eq!(app.auth(reset(&token, NEW_PASSWORD)).await.status, 200);
    assert_eq!(count(&mut app.db.conn(), "session"), 0);
    assert_eq!(app.session_of(&cookie).await, Value::Null);
}

#[actix_web::test]
async fn a_user_without_a_password_gets_one() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("gus@example.com").await;
    // As if Gus had only ever signed in with GitHub.
    exec(&mut app.db.conn(), "DELETE FROM account");
    let token = token_of(&reset_link(&mut app, &resend, "gus@example.com", 1).await);
    assert_eq!(app.auth(reset(&token, NEW_PASSWORD)).await.status, 200);
    let mut conn = app.db.conn();
    assert_eq!(
        text(
            &mut conn,
            "SELECT provider_id || ':' || (account_id = user_id) FROM account"
        )
        .as_deref(),
        Some("credential:true")
    );
    drop(conn);
    let signed_in = app.sign_in("gus@example.com", NEW_PASSWORD).await;
    assert_eq!(signed_in.status, 200);
    assert!(!cookie_header(&signed_in).is_empty());
}

#[actix_web::test]
async fn a_deleted_user_cannot_be_reset() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("hal@example.com").await;
    let token = token_of(&reset_link(&mut app, &resend, "hal@example.com", 1).await);
    exec(&mut app.db.conn(), "DELETE FROM \"user\"");
    let res = app.auth(reset(&token, NEW_PASSWORD)).await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"code": "USER_NOT_FOUND", "message": "User not found"})
    );
}

/// Two resets with one token at the same moment, over real connections: exactly one wins.
#[actix_web::test]
async fn concurrent_resets_with_one_token_succeed_once() {
    let server = LiveServer::start(Role::Auth, &[]);
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/api/auth{p}", server.url);
    let res = http
        .post(url("/sign-up/email"))
        .json(&json!({"name": "Ivy", "email": "ivy@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .post(url("/request-password-reset"))
        .json(&json!({"email": "ivy@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The log transport sent nothing anywhere; the token is in the row, written (with its
    // outbox job) in the background after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let identifier = loop {
        if let Some(found) = text(
            &mut server.db().conn(),
            "SELECT identifier FROM verification",
        ) {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "no reset token");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let token = identifier.strip_prefix("reset-password:").unwrap();
    let attempt = |password: &'static str| {
        http.post(url("/reset-password"))
            .json(&json!({"newPassword": password, "token": token}))
            .send()
    };
    let (a, b) = tokio::join!(attempt("first-password-111"), attempt("second-password-22"));
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
}

/// Known and unknown addresses must take the same path up to the answer (a timing oracle told
/// them apart): the answer may not wait on anything that depends on the address. With the
/// `user` table locked by another transaction, both are answered at once; the known address's
/// mail follows when the lock goes.
#[actix_web::test]
async fn the_answer_does_not_wait_on_the_address_lookup() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("tim@example.com").await;
    let mut locker = app.db.conn();
    exec(&mut locker, "BEGIN");
    exec(&mut locker, "LOCK TABLE \"user\" IN ACCESS EXCLUSIVE MODE");
    for email in ["tim@example.com", "nobody@example.com"] {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            app.auth(post(
                "/api/auth/request-password-reset",
                json!({"email": email, "redirectTo": "/reset"}),
            )),
        )
        .await
        .unwrap_or_else(|_| panic!("{email}: the answer waited on the locked user table"));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json(), json!({"status": true, "message": ANSWER}));
    }
    assert!(resend.emails().await.is_empty(), "nothing sent yet");
    exec(&mut locker, "COMMIT");
    let mails = resend.wait_for(1).await;
    assert_eq!(mails[0]["to"], json!(["tim@example.com"]));
    assert!(link_in(&mails[0]).contains("/api/auth/reset-password/"));
}
