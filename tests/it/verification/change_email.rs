//! change-email: the mail to the new address, the link that moves the account, and what the
//! old address hears.

use super::*;

#[actix_web::test]
async fn change_email_mails_the_new_address_and_moves_the_account_on_click() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true")]);
    let cookie = app.signed_in("ivy@example.com").await;
    exec(
        &mut app.db.conn(),
        "UPDATE \"user\" SET email_verified = true WHERE email = 'ivy@example.com'",
    );
    let res = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "Ivy2@example.com", "callbackURL": "/settings"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "ivy@example.com",
        "nothing changes before the new address is confirmed"
    );
    let mail = resend.mail_to("ivy2@example.com", 1).await.remove(0);
    assert_eq!(
        mail["subject"],
        "Confirm your new email address for Switchboard"
    );
    let link = link_in(&mail);
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
    assert_eq!(claims["email"], "ivy@example.com");
    assert_eq!(claims["updateTo"], "ivy2@example.com");
    assert_eq!(claims["requestType"], "change-email-verification");

    // Someone else's session cannot complete it.
    let other = app.signed_in("jon@example.com").await;
    let foreign = app
        .auth(get_with(
            &format!("/api/auth/verify-email?token={token}"),
            &other,
        ))
        .await;
    assert_eq!(foreign.status, 401);
    assert_eq!(foreign.json()["code"], "INVALID_USER");

    let clicked = app.auth(get_with(&path_of(&link), &cookie)).await;
    assert_eq!(clicked.status, 302);
    assert_eq!(clicked.header("location"), Some("/settings"));
    assert_eq!(
        cookie_header(&clicked),
        cookie,
        "the session cookie is re-set"
    );
    let user = app.session_of(&cookie).await["user"].clone();
    assert_eq!(user["email"], "ivy2@example.com");
    assert_eq!(user["emailVerified"], true, "keeps its previous value");

    // The link is spent: the old address no longer has an account.
    let again = app
        .auth(get(&format!("/api/auth/verify-email?token={token}")))
        .await;
    assert_eq!(again.status, 401);
    assert_eq!(again.json()["code"], "USER_NOT_FOUND");
}

#[actix_web::test]
async fn change_email_without_a_session_returns_the_user() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true")]);
    let cookie = app.signed_in("kim@example.com").await;
    app.auth(post_with(
        "/api/auth/change-email",
        &cookie,
        json!({"newEmail": "kim2@example.com"}),
    ))
    .await;
    let link = link_in(&resend.mail_to("kim2@example.com", 1).await[0]);
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let res = app
        .auth(get(&format!("/api/auth/verify-email?token={token}")))
        .await;
    assert_eq!(res.status, 200);
    let body = res.json();
    assert_eq!(body["status"], true);
    assert_eq!(body["user"]["email"], "kim2@example.com");
    assert_eq!(body["user"]["emailVerified"], false);
}

#[actix_web::test]
async fn immediate_change_email_mails_a_verification_to_the_new_address() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[
        ("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true"),
        (
            "SWITCHBOARD__AUTH__USER__UPDATE_EMAIL_WITHOUT_VERIFICATION",
            "true",
        ),
    ]);
    let cookie = app.signed_in("lu@example.com").await;
    let res = app
        .auth(post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": "lu2@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "lu2@example.com"
    );
    let mail = resend.mail_to("lu2@example.com", 2).await.remove(0);
    assert_eq!(mail["subject"], "Verify your email address for Switchboard");
    let told = resend.mail_to("lu@example.com", 2).await;
    assert_eq!(
        told[0]["subject"], "The email address of your Switchboard account changed",
        "the old address is told"
    );
    assert_eq!(app.auth(get(&path_of(&link_in(&mail)))).await.status, 302);
    assert!(verified(&app, "lu2@example.com"));
}

#[actix_web::test]
async fn a_change_email_link_works_once_and_the_old_address_hears_of_it() {
    let resend = ResendStandIn::start().await;
    let mut app = resend.app(&[("SWITCHBOARD__AUTH__USER__CHANGE_EMAIL_ENABLED", "true")]);
    let cookie = app.signed_in("flip@example.com").await;
    exec(
        &mut app.db.conn(),
        "UPDATE \"user\" SET email_verified = true WHERE email = 'flip@example.com'",
    );
    let change = |to: &str| {
        post_with(
            "/api/auth/change-email",
            &cookie,
            json!({"newEmail": to, "callbackURL": "/settings"}),
        )
    };

    assert_eq!(app.auth(change("flop@example.com")).await.status, 200);
    let away = link_in(&resend.mail_to("flop@example.com", 1).await[0]);
    let res = app.auth(get_with(&path_of(&away), &cookie)).await;
    assert_eq!(res.header("location"), Some("/settings"));
    let told = resend.mail_to("flip@example.com", 2).await;
    assert_eq!(told.len(), 1, "the old address is told");
    assert_eq!(
        told[0]["subject"],
        "The email address of your Switchboard account changed"
    );
    assert!(
        told[0]["text"]
            .as_str()
            .unwrap()
            .contains("from flip@example.com to flop@example.com"),
        "{}",
        told[0]["text"]
    );

    // The same link again: spent.
    let res = app.auth(get_with(&path_of(&away), &cookie)).await;
    assert_eq!(
        res.header("location"),
        Some("/settings?error=USER_NOT_FOUND")
    );

    // Back again; now the first link's old address exists again, and still it is spent.
    assert_eq!(app.auth(change("flip@example.com")).await.status, 200);
    let back = resend.mail_to("flip@example.com", 3).await;
    let back = back
        .iter()
        .find(|m| m["subject"] == "Confirm your new email address for Switchboard")
        .unwrap();
    let res = app.auth(get_with(&path_of(&link_in(back)), &cookie)).await;
    assert_eq!(res.header("location"), Some("/settings"));
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "flip@example.com"
    );
    let res = app.auth(get_with(&path_of(&away), &cookie)).await;
    assert_eq!(
        res.header("location"),
        Some("/settings?error=INVALID_TOKEN"),
        "a change-email link works once"
    );
    assert_eq!(
        app.session_of(&cookie).await["user"]["email"],
        "flip@example.com"
    );
    resend.mail_to("flop@example.com", 4).await;
}
