//! Email verification end to end (spec §6.16, §6.17, §8.1): the mailed link, as the user
//! follows it, against a Resend stand-in.
//! Split by flow: here the link mailed at sign-up and following it; `send` (send-verification-
//! email, with and without a session); `change_email` (change-email and its links).

mod change_email;
mod send;

use crate::common::auth::{PASSWORD, cookie_header, get_with, post, post_with};
use crate::common::mail::{ResendStandIn, link_in, path_of};
use crate::common::rows::{exec, text};
use actix_web::test::TestRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use serde_json::{Value, json};

const SEND_ON_SIGN_UP: (&str, &str) = (
    "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_UP",
    "true",
);
const REQUIRE: (&str, &str) = (
    "SWITCHBOARD__AUTH__EMAIL_AND_PASSWORD__REQUIRE_EMAIL_VERIFICATION",
    "true",
);
/// `config/test.toml`'s `BETTER_AUTH_SECRET`.
const SECRET: &str = "dev-only-test-better-auth-secret-0123456789";

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path)
}

fn verified(app: &crate::common::TestApp, email: &str) -> bool {
    text(
        &mut app.db.conn(),
        &format!("SELECT email_verified FROM \"user\" WHERE email = '{email}'"),
    )
    .as_deref()
        == Some("true")
}

fn sign_up_body(email: &str, callback: &str) -> Value {
    json!({"name": "Alice", "email": email, "password": PASSWORD, "callbackURL": callback})
}

/// An HS256 token signed the way Better Auth signs it, with the claims given.
fn better_auth_token(claims: &Value) -> String {
    let input = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[actix_web::test]
async fn sign_up_mails_a_link_that_verifies_and_redirects() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[SEND_ON_SIGN_UP]);
    let res = app
        .auth(post(
            "/api/auth/sign-up/email",
            sign_up_body("amy@example.com", "/welcome?tab=1"),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert!(res.json()["token"].is_string(), "auto sign-in still on");
    let cookie = cookie_header(&res);
    assert_eq!(
        app.session_of(&cookie).await["user"]["emailVerified"],
        false
    );

    let mail = resend.mail_to("amy@example.com", 1).await.remove(0);
    assert_eq!(mail["subject"], "Verify your email address for Switchboard");
    let link = link_in(&mail);
    assert!(
        link.starts_with("http://localhost:5001/api/auth/verify-email?token=eyJhbGciOiJIUzI1NiJ9."),
        "{link}"
    );
    assert!(
        link.ends_with("&callbackURL=%2Fwelcome%3Ftab%3D1"),
        "{link}"
    );
    // The token is Better Auth's: its claims name the user.
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let user_id = text(
        &mut app.db.conn(),
        "SELECT id FROM \"user\" WHERE email = 'amy@example.com'",
    )
    .unwrap();
    assert_eq!(claims["email"], "amy@example.com");
    assert_eq!(claims["userId"], user_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(!verified(&app, "amy@example.com"));

    let clicked = app.auth(get(&path_of(&link))).await;
    assert_eq!(clicked.status, 302);
    assert_eq!(clicked.header("location"), Some("/welcome?tab=1"));
    assert_eq!(clicked.header("content-type"), Some("application/json"));
    assert!(clicked.body.is_empty());
    assert!(
        clicked.header("set-cookie").is_none(),
        "no auto sign-in by default"
    );
    assert!(verified(&app, "amy@example.com"));
    assert_eq!(
        app.session_of(&cookie).await["user"]["emailVerified"],
        true,
        "the session's user shows it at once"
    );

    // Again: already verified, same redirect; without a callback, Better Auth's JSON.
    let again = app.auth(get(&path_of(&link))).await;
    assert_eq!(again.status, 302);
    assert_eq!(again.header("location"), Some("/welcome?tab=1"));
    let bare = app
        .auth(get(&format!("/api/auth/verify-email?token={token}")))
        .await;
    assert_eq!(bare.status, 200);
    assert_eq!(bare.json(), json!({"status": true, "user": null}));
}

#[actix_web::test]
async fn send_on_sign_up_follows_require_email_verification_unless_set() {
    let resend = ResendStandIn::start().await;
    let mut quiet = resend.app(&[]);
    quiet.sign_up("quiet@example.com").await;
    let mut required = resend.app(&[REQUIRE]);
    let res = required.sign_up("req@example.com").await;
    assert_eq!(
        res.json()["token"],
        Value::Null,
        "no session until verified"
    );
    let mut off = resend.app(&[
        REQUIRE,
        (
            "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_UP",
            "false",
        ),
    ]);
    off.sign_up("off@example.com").await;
    // A marker mail last: anything the first sign-ups sent would have arrived before it.
    let mut marker = resend.app(&[SEND_ON_SIGN_UP]);
    marker.sign_up("marker@example.com").await;
    resend.mail_to("marker@example.com", 2).await;
    let mut to: Vec<String> = resend
        .emails()
        .await
        .iter()
        .map(|m| m["to"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ["marker@example.com", "req@example.com"]);
}

#[actix_web::test]
async fn unverified_sign_in_is_refused_until_the_link_is_followed() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[
        REQUIRE,
        (
            "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_IN",
            "true",
        ),
    ]);
    app.sign_up("bea@example.com").await;
    let first = resend.mail_to("bea@example.com", 1).await;
    assert_eq!(first.len(), 1, "sign-up mailed a link");

    let wrong = app.sign_in("bea@example.com", "wrong-password-1").await;
    assert_eq!(wrong.status, 401, "a wrong password still says 401");
    let refused = app
        .auth(post(
            "/api/auth/sign-in/email",
            json!({"email": "bea@example.com", "password": PASSWORD, "callbackURL": "/home"}),
        ))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json(),
        json!({"code": "EMAIL_NOT_VERIFIED", "message": "Email not verified"})
    );
    assert!(refused.header("set-cookie").is_none());
    // sendOnSignIn: a fresh link, carrying the sign-in's callbackURL.
    let second = resend.mail_to("bea@example.com", 2).await;
    assert_eq!(second.len(), 2);
    let link = link_in(&second[1]);
    assert!(link.ends_with("&callbackURL=%2Fhome"), "{link}");

    assert_eq!(app.auth(get(&path_of(&link))).await.status, 302);
    let ok = app.sign_in("bea@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["user"]["emailVerified"], true);
}

#[actix_web::test]
async fn auto_sign_in_after_verification_sets_the_session_cookie() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[
        REQUIRE,
        (
            "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__AUTO_SIGN_IN_AFTER_VERIFICATION",
            "true",
        ),
    ]);
    app.sign_up("cy@example.com").await;
    let link = link_in(&resend.mail_to("cy@example.com", 1).await[0]);
    let clicked = app.auth(get(&path_of(&link))).await;
    assert_eq!(clicked.status, 302);
    assert_eq!(clicked.header("location"), Some("/"));
    let cookie = cookie_header(&clicked);
    assert!(cookie.contains("better-auth.session_token="), "{cookie}");
    let session = app.session_of(&cookie).await;
    assert_eq!(session["user"]["email"], "cy@example.com");
    assert_eq!(session["user"]["emailVerified"], true);
}

#[actix_web::test]
async fn tampered_expired_and_missing_tokens() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[SEND_ON_SIGN_UP]);
    app.sign_up("dan@example.com").await;
    app.sign_up("eve@example.com").await;
    let mails = resend.mail_to("dan@example.com", 2).await;
    let link = link_in(&mails[0]);
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();

    // Eve re-signs nothing: she swaps the claims for her own and keeps Dan's signature.
    let parts: Vec<&str> = token.split('.').collect();
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"email": "eve@example.com", "iat": 1, "exp": 4_102_444_800i64}))
            .unwrap(),
    );
    let forged = format!("{}.{claims}.{}", parts[0], parts[2]);
    let cases = [
        (forged.as_str(), "INVALID_TOKEN", "Invalid token"),
        ("not-a-jwt", "INVALID_TOKEN", "Invalid token"),
    ];
    for (bad, code, message) in cases {
        let res = app
            .auth(get(&format!("/api/auth/verify-email?token={bad}")))
            .await;
        assert_eq!(res.status, 401, "{bad}");
        assert_eq!(res.json(), json!({"code": code, "message": message}));
        let redirected = app
            .auth(get(&format!(
                "/api/auth/verify-email?token={bad}&callbackURL=%2Fverified%3Fa%3D1"
            )))
            .await;
        assert_eq!(redirected.status, 302);
        assert_eq!(
            redirected.header("location"),
            Some(format!("/verified?a=1&error={code}").as_str())
        );
    }
    assert!(!verified(&app, "eve@example.com"));

    let trusted = app
        .auth(get(&format!(
            "/api/auth/verify-email?token={token}&callbackURL=https%3A%2F%2Fevil.example%2F"
        )))
        .await;
    assert_eq!(trusted.status, 403);
    assert_eq!(trusted.json()["code"], "INVALID_CALLBACK_URL");

    let missing = app.auth(get("/api/auth/verify-email")).await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"code": "VALIDATION_ERROR", "message": "[query.token] Invalid input: expected string, received undefined"})
    );

    app.clock.advance(Duration::seconds(3600));
    let expired = app
        .auth(get(&format!("/api/auth/verify-email?token={token}")))
        .await;
    assert_eq!(expired.status, 401);
    assert_eq!(
        expired.json(),
        json!({"code": "TOKEN_EXPIRED", "message": "Token expired"})
    );
    let expired_link = app.auth(get(&path_of(&link))).await;
    assert_eq!(expired_link.status, 302);
    assert_eq!(
        expired_link.header("location"),
        Some("/?error=TOKEN_EXPIRED")
    );
    assert!(!verified(&app, "dan@example.com"));
}

#[actix_web::test]
async fn tokens_signed_by_better_auth_keep_working() {
    let mut app = crate::common::TestApp::new();
    app.sign_up("old@example.com").await;
    let now = app.clock_now().timestamp();
    // Older Better Auth versions put no userId in the token.
    let legacy =
        better_auth_token(&json!({"email": "old@example.com", "iat": now, "exp": now + 3600}));
    let res = app
        .auth(get(&format!("/api/auth/verify-email?token={legacy}")))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true, "user": null}));
    assert!(verified(&app, "old@example.com"));

    app.sign_up("other@example.com").await;
    let wrong_user = better_auth_token(
        &json!({"email": "other@example.com", "userId": "someone-else", "iat": now, "exp": now + 3600}),
    );
    let res = app
        .auth(get(&format!("/api/auth/verify-email?token={wrong_user}")))
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["code"], "INVALID_TOKEN");
    let gone =
        better_auth_token(&json!({"email": "gone@example.com", "iat": now, "exp": now + 3600}));
    let res = app
        .auth(get(&format!("/api/auth/verify-email?token={gone}")))
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.json(),
        json!({"code": "USER_NOT_FOUND", "message": "User not found"})
    );
}

#[actix_web::test]
async fn auto_sign_in_never_replaces_another_users_session() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[
        SEND_ON_SIGN_UP,
        (
            "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__AUTO_SIGN_IN_AFTER_VERIFICATION",
            "true",
        ),
    ]);
    let victim = app.signed_in("vera@example.com").await;
    app.sign_up("mal@example.com").await;
    let mails = resend.mail_to("mal@example.com", 2).await;
    // Mallory's own verification link, opened by the victim while signed in as herself.
    let link = link_in(&mails[0]);
    let clicked = app.auth(get_with(&path_of(&link), &victim)).await;
    assert_eq!(clicked.status, 302);
    assert_eq!(
        clicked.header("location"),
        Some("/?notice=SIGNED_IN_AS_ANOTHER_USER")
    );
    assert!(
        clicked.header_all("set-cookie").is_empty(),
        "no cookie replaced: {:?}",
        clicked.header_all("set-cookie")
    );
    assert_eq!(
        app.session_of(&victim).await["user"]["email"],
        "vera@example.com"
    );
    assert!(verified(&app, "mal@example.com"), "the link still verifies");

    // The same without a callbackURL: a JSON answer that says so.
    let mails = resend.mail_to("vera@example.com", 2).await;
    let token = link_in(&mails[0])
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let other = app.signed_in("otto@example.com").await;
    let res = app
        .auth(get_with(
            &format!("/api/auth/verify-email?token={token}"),
            &other,
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({"status": true, "user": null, "notice": "SIGNED_IN_AS_ANOTHER_USER"})
    );
    assert!(res.header_all("set-cookie").is_empty());
    assert_eq!(
        app.session_of(&other).await["user"]["email"],
        "otto@example.com"
    );
}
