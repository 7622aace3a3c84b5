//! send-verification-email: with a session, and without one (which reveals nothing and waits
//! on nothing).

use super::*;

#[actix_web::test]
async fn send_verification_email_without_a_session_reveals_nothing() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("fay@example.com").await;
    app.sign_up("gus@example.com").await;
    exec(
        &mut app.db.conn(),
        "UPDATE \"user\" SET email_verified = true WHERE email = 'gus@example.com'",
    );
    for email in ["nobody@example.com", "gus@example.com", "FAY@example.com"] {
        let res = app
            .auth(post(
                "/api/auth/send-verification-email",
                json!({"email": email, "callbackURL": "/done"}),
            ))
            .await;
        assert_eq!(res.status, 200, "{email}");
        assert_eq!(res.json(), json!({"status": true}));
    }
    // Only the unverified user got mail; the unknown and the verified ones went before it.
    let mails = resend.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0]["to"], json!(["fay@example.com"]));
    assert!(link_in(&mails[0]).ends_with("&callbackURL=%2Fdone"));

    let invalid = app
        .auth(post(
            "/api/auth/send-verification-email",
            json!({"email": "x"}),
        ))
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.json()["message"],
        "[body.email] Invalid email address"
    );
    let evil = app
        .auth(post(
            "/api/auth/send-verification-email",
            json!({"email": "fay@example.com", "callbackURL": "https://evil.example"}),
        ))
        .await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.json()["code"], "INVALID_CALLBACK_URL");
}

#[actix_web::test]
async fn send_verification_email_without_a_session_is_padded() {
    let mut app = crate::common::TestApp::with_env(&[(
        "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__ANONYMOUS_MIN_RESPONSE_MS",
        "150",
    )]);
    let started = std::time::Instant::now();
    let res = app
        .auth(post(
            "/api/auth/send-verification-email",
            json!({"email": "nobody@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}

#[actix_web::test]
async fn send_verification_email_with_a_session() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    let cookie = app.signed_in("hal@example.com").await;
    let send = |email: &str| {
        post_with(
            "/api/auth/send-verification-email",
            &cookie,
            json!({"email": email}),
        )
    };
    let mismatch = app.auth(send("other@example.com")).await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.json(),
        json!({"code": "EMAIL_MISMATCH", "message": "Email mismatch"})
    );
    let ok = app.auth(send("hal@example.com")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json(), json!({"status": true}));
    let link = link_in(&resend.mail_to("hal@example.com", 1).await[0]);
    assert!(
        link.ends_with("&callbackURL=%2F"),
        "callbackURL defaults to /: {link}"
    );
    assert_eq!(
        app.auth(get_with(&path_of(&link), &cookie)).await.status,
        302
    );
    let already = app.auth(send("hal@example.com")).await;
    assert_eq!(already.status, 400);
    assert_eq!(
        already.json(),
        json!({"code": "EMAIL_ALREADY_VERIFIED", "message": "Email is already verified"})
    );
}

#[actix_web::test]
async fn send_verification_email_can_be_disabled() {
    let mut app = crate::common::TestApp::with_env(&[(
        "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__ENABLED",
        "false",
    )]);
    let res = app
        .auth(post(
            "/api/auth/send-verification-email",
            json!({"email": "a@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"code": "VERIFICATION_EMAIL_NOT_ENABLED", "message": "Verification email isn't enabled"})
    );
}

/// Without a session, a known unverified address and an unknown one take the same path up to
/// the answer: with the `user` table locked, both are answered at once (the padding is 0 in
/// tests), and the mail follows once the lock goes.
#[actix_web::test]
async fn send_verification_email_without_a_session_does_not_wait_on_the_lookup() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[]);
    app.sign_up("una@example.com").await;
    let mut locker = app.db.conn();
    exec(&mut locker, "BEGIN");
    exec(&mut locker, "LOCK TABLE \"user\" IN ACCESS EXCLUSIVE MODE");
    for email in ["una@example.com", "nobody@example.com"] {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            app.auth(post(
                "/api/auth/send-verification-email",
                json!({"email": email}),
            )),
        )
        .await
        .unwrap_or_else(|_| panic!("{email}: the answer waited on the locked user table"));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json(), json!({"status": true}));
    }
    exec(&mut locker, "COMMIT");
    let mails = resend.wait_for(1).await;
    assert_eq!(mails[0]["to"], json!(["una@example.com"]));
}
