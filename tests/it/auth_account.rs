//! update-user, change-password, change-email, delete-user and the error page.

use crate::common::TestApp;
use crate::common::auth::{PASSWORD, cookie_header, get_with, post, post_with};
use crate::common::rows::{count, text};
use actix_web::test::TestRequest;
use chrono::Duration;
use serde_json::{Value, json};

#[actix_web::test]
async fn update_user_changes_name_and_image_and_reissues_the_cookie() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("amy@example.com").await;
    app.clock.advance(Duration::minutes(5));
    let res = app
        .auth(post_with("/api/auth/update-user", &cookie, json!({"name": "Amy B", "image": "https://img.example/a.png", "emailVerified": true, "role": "admin"})))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true}));
    let set = res.header("set-cookie").unwrap();
    assert!(set.contains("Max-Age=604800"), "{set}");
    assert_eq!(cookie_header(&res), cookie, "the same session token");

    let user = app.session_of(&cookie).await["user"].clone();
    assert_eq!(user["name"], "Amy B");
    assert_eq!(user["image"], "https://img.example/a.png");
    assert_eq!(user["emailVerified"], false, "ignored");
    assert_ne!(user["updatedAt"], user["createdAt"]);

    let cleared = app
        .auth(post_with(
            "/api/auth/update-user",
            &cookie,
            json!({"image": null}),
        ))
        .await;
    assert_eq!(cleared.status, 200);
    assert_eq!(app.session_of(&cookie).await["user"]["image"], Value::Null);
}

#[actix_web::test]
async fn update_user_errors() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("bea@example.com").await;
    let cases = [
        (
            json!({"email": "new@example.com"}),
            "EMAIL_CAN_NOT_BE_UPDATED",
        ),
        (json!({}), "NO_FIELDS_TO_UPDATE"),
        (json!({"unknown": 1}), "NO_FIELDS_TO_UPDATE"),
        (json!([1, 2]), "BODY_MUST_BE_AN_OBJECT"),
        (json!({"name": 5}), "VALIDATION_ERROR"),
    ];
    for (body, code) in cases {
        let res = app
            .auth(post_with("/api/auth/update-user", &cookie, body.clone()))
            .await;
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(res.json()["code"], code, "{body}");
    }
    let anonymous = app
        .auth(post("/api/auth/update-user", json!({"name": "x"})))
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(app.session_of(&cookie).await["user"]["name"], "Alice");
}

#[actix_web::test]
async fn change_password_without_revoking() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("cy@example.com").await;
    let wrong = app
        .auth(post_with(
            "/api/auth/change-password",
            &cookie,
            json!({"currentPassword": "not-the-password", "newPassword": "new-password-123"}),
        ))
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(
        wrong.json(),
        json!({"code": "INVALID_PASSWORD", "message": "Invalid password"})
    );
    let short = app
        .auth(post_with(
            "/api/auth/change-password",
            &cookie,
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        ))
        .await;
    assert_eq!(short.json()["code"], "PASSWORD_TOO_SHORT");

    let ok = app
        .auth(post_with(
            "/api/auth/change-password",
            &cookie,
            json!({"currentPassword": PASSWORD, "newPassword": "new-password-123"}),
        ))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["token"], Value::Null);
    assert_eq!(ok.json()["user"]["email"], "cy@example.com");
    assert!(ok.header("set-cookie").is_none());
    assert_eq!(app.sign_in("cy@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        app.sign_in("cy@example.com", "new-password-123")
            .await
            .status,
        200
    );
    assert_ne!(
        app.session_of(&cookie).await,
        Value::Null,
        "the session survives"
    );
}

#[actix_web::test]
async fn change_password_revoking_other_sessions_starts_a_new_one() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("di@example.com").await;
    let other = cookie_header(&app.sign_in("di@example.com", PASSWORD).await);
    let res = app
        .auth(post_with(
            "/api/auth/change-password",
            &cookie,
            json!({"currentPassword": PASSWORD, "newPassword": "new-password-123", "revokeOtherSessions": true}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let token = res.json()["token"].as_str().unwrap().to_owned();
    let fresh = cookie_header(&res);
    assert!(fresh.contains(&token));
    assert_eq!(
        app.session_of(&cookie).await,
        Value::Null,
        "the old current session is gone too"
    );
    assert_eq!(app.session_of(&other).await, Value::Null);
    assert_eq!(app.session_of(&fresh).await["session"]["token"], token);
    assert_eq!(count(&mut app.db.conn(), "session"), 1);
}

#[actix_web::test]
async fn change_email_is_disabled_by_default() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("ed@example.com").await;
    let res = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "ed2@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"code": "CHANGE_EMAIL_DISABLED", "message": "Change email is disabled"})
    );
}

#[actix_web::test]
async fn change_email_for_unverified_users_when_allowed() {
    let mut app = TestApp::with_env(&[
        ("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true"),
        (
            "SWITCHBOARD__AUTH__USER__UPDATE_EMAIL_WITHOUT_VERIFICATION",
            "true",
        ),
    ]);
    let cookie = app.signed_in("flo@example.com").await;
    app.signed_in("taken@example.com").await;

    let same = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "FLO@example.com"}),
        ))
        .await;
    assert_eq!(same.status, 400);
    assert_eq!(same.json()["code"], "EMAIL_IS_THE_SAME");

    let invalid = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "nope"}),
        ))
        .await;
    assert_eq!(
        invalid.json()["message"],
        "[body.newEmail] Invalid email address"
    );

    let taken = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "taken@example.com"}),
        ))
        .await;
    assert_eq!(taken.status, 200, "a taken address is not revealed");
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "flo@example.com"
    );

    let ok = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "Flo2@example.com"}),
        ))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json(), json!({"status": true}));
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "flo2@example.com"
    );
}

#[actix_web::test]
async fn change_email_without_verification_mail_is_refused() {
    let mut app = TestApp::with_env(&[
        ("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true"),
        ("SWITCHBOARD__AUTH__EMAIL_VERIFICATION__ENABLED", "false"),
    ]);
    let cookie = app.signed_in("gil@example.com").await;
    let res = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "gil2@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "VERIFICATION_EMAIL_NOT_ENABLED");
}

#[actix_web::test]
async fn delete_user_is_disabled_by_default() {
    let mut app = TestApp::new();
    let cookie = app.signed_in("hu@example.com").await;
    let res = app
        .auth(post_with(
            "/api/auth/delete-user",
            &cookie,
            json!({"password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 1);
}

#[actix_web::test]
async fn delete_user_with_password_or_a_fresh_session() {
    let mut app = TestApp::with_env(&[("SWITCHBOARD__AUTH__USER__DELETE_USER_ENABLED", "true")]);
    let cookie = app.signed_in("ike@example.com").await;
    let wrong = app
        .auth(post_with(
            "/api/auth/delete-user",
            &cookie,
            json!({"password": "wrong-password"}),
        ))
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["code"], "INVALID_PASSWORD");

    let res = app
        .auth(post_with(
            "/api/auth/delete-user",
            &cookie,
            json!({"password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({"success": true, "message": "User deleted"})
    );
    assert_eq!(res.header_all("set-cookie").len(), 3);
    let conn = &mut app.db.conn();
    assert_eq!(count(conn, "\"user\""), 0);
    assert_eq!(count(conn, "account"), 0);
    assert_eq!(count(conn, "session"), 0);

    // Without a password: a fresh session is enough; a day-old one is not.
    let fresh = app.signed_in("jan@example.com").await;
    let stale = app.signed_in("kit@example.com").await;
    assert_eq!(
        app.auth(post_with("/api/auth/delete-user", &fresh, json!({})))
            .await
            .status,
        200
    );
    app.clock.advance(Duration::hours(25));
    let res = app
        .auth(post_with("/api/auth/delete-user", &stale, json!({})))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "SESSION_EXPIRED");
    assert_eq!(
        text(conn, "SELECT email FROM \"user\"").as_deref(),
        Some("kit@example.com")
    );
}

#[actix_web::test]
async fn the_error_page() {
    let mut app = TestApp::new();
    let page = app
        .auth(
            TestRequest::get()
                .uri("/api/auth/error?error=access_denied&error_description=%3Cscript%3E"),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(
        html.contains("access_denied")
            && html.contains("&lt;script&gt;")
            && !html.contains("<script>")
    );

    let mut prod = TestApp::with_env(&[
        ("APP_ENV", "production"),
        (
            "BETTER_AUTH_SECRET",
            "a-real-production-secret-of-40-characters",
        ),
    ]);
    let res = prod
        .auth(TestRequest::get().uri("/api/auth/error?error=bad%20code&error_description=x%20y"))
        .await;
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("/?error=UNKNOWN&error_description=x+y")
    );
    let ok = prod.auth(get_with("/api/auth/ok", "")).await;
    assert_eq!(ok.json(), json!({"ok": true}));
}
