//! Configuration, clamped token lifetimes, and pre-account-takeover: links made while an
//! email was unverified are dropped once ownership of the address is proven.

use super::*;

#[test]
fn github_and_account_linking_configuration() {
    use crate::common::test_config;
    use switchboard::platform::role::Role;

    let config = test_config(&[]);
    let gh = &config.auth.github;
    assert!(!gh.is_configured());
    assert_eq!(gh.authorize_url, "https://github.com/login/oauth/authorize");
    assert_eq!(gh.token_url, "https://github.com/login/oauth/access_token");
    assert_eq!(gh.api_url, "https://api.github.com");
    let linking = &config.auth.account_linking;
    assert!(linking.enabled && !linking.allow_different_emails && !linking.allow_unlinking_all);
    assert!(linking.trusted_providers.is_empty());

    let config = test_config(&[
        ("GITHUB_CLIENT_ID", "id"),
        ("GITHUB_CLIENT_SECRET", "secret"),
        ("SWITCHBOARD__AUTH__GITHUB__SCOPES", "repo,gist"),
        (
            "SWITCHBOARD__AUTH__ACCOUNT_LINKING__TRUSTED_PROVIDERS",
            "github",
        ),
        ("SWITCHBOARD__AUTH__GITHUB__TOKEN_URL", "not a url"),
    ]);
    assert!(config.auth.github.is_configured());
    assert_eq!(config.auth.github.scopes, ["repo", "gist"]);
    assert_eq!(config.auth.account_linking.trusted_providers, ["github"]);
    let problems = config.validate(&[Role::Auth]).unwrap_err().problems();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("auth.github.token_url ")),
        "{problems:?}"
    );
}

#[actix_web::test]
async fn a_new_unverified_github_user_gets_the_sign_up_verification_mail() {
    let github = GithubStandIn::start().await;
    let resend = crate::common::mail::ResendStandIn::start().await;
    let env = github.env();
    let uri = resend.server.uri();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(&[
        ("RESEND_API_KEY", crate::common::mail::API_KEY),
        ("SWITCHBOARD__AUTH__MAIL__RESEND_BASE_URL", uri.as_str()),
        (
            "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_UP",
            "true",
        ),
    ]);
    let mut app = TestApp::with_env(&all);
    github
        .simple_user("gho_unverified", 11, "new@example.com", false)
        .await;
    github
        .simple_user("gho_verified", 12, "sure@example.com", true)
        .await;
    github
        .simple_user("gho_later", 13, "later@example.com", false)
        .await;

    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_unverified");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/welcome");
    let mails = resend.mail_to("new@example.com", 1).await;
    let link = crate::common::mail::link_in(&mails[0]);
    assert!(link.contains("/api/auth/verify-email?token="), "{link}");

    // GitHub vouched for this one: no mail.
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_verified");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/welcome");
    // Mail goes out in the background: a later unverified user's mail having arrived means the
    // verified user's would have been sent by now, had there been one.
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_later");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/welcome");
    // Two mails in all: the first user's and this one's (the count is of every mail).
    resend.mail_to("later@example.com", 2).await;
    let all_mail = resend.emails().await;
    assert_eq!(all_mail.len(), 2, "{all_mail:?}");
    assert!(
        !format!("{all_mail:?}").contains("sure@example.com"),
        "{all_mail:?}"
    );
}

#[actix_web::test]
async fn absurd_token_lifetimes_from_github_are_clamped_not_a_panic() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_long", 11, "long@example.com", true)
        .await;
    // `now + 10^15 s` is past chrono's last date: this used to panic the worker.
    github.tokens.extra.lock().unwrap().extend(
        json!({
            "expires_in": 1_000_000_000_000_000u64,
            "refresh_token": "ghr_long",
            "refresh_token_expires_in": u64::MAX,
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_long");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/welcome");
    let mut conn = app.db.conn();
    // Clamped to ten years from now.
    let years = text(
        &mut conn,
        "SELECT (extract(year from access_token_expires_at) - extract(year from now()))::int::text \
         || ' ' || (extract(year from refresh_token_expires_at) - extract(year from now()))::int::text \
         FROM account",
    )
    .unwrap();
    assert!(years == "10 10" || years == "9 9", "{years}");
}

/// An app with GitHub and a Resend stand-in, and the sign-up verification mail on.
async fn app_with_mail(
    github: &GithubStandIn,
    resend: &crate::common::mail::ResendStandIn,
    extra: &[(&str, &str)],
) -> TestApp {
    let env = github.env();
    let uri = resend.server.uri();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(&[
        ("RESEND_API_KEY", crate::common::mail::API_KEY),
        ("SWITCHBOARD__AUTH__MAIL__RESEND_BASE_URL", uri.as_str()),
        (
            "SWITCHBOARD__AUTH__EMAIL_VERIFICATION__SEND_ON_SIGN_UP",
            "true",
        ),
    ]);
    all.extend_from_slice(extra);
    TestApp::with_env(&all)
}

/// Mallory's GitHub account claims the victim's address (unverified at GitHub) and signs up
/// with it first: the account exists before the victim ever comes. Returns Mallory's cookie.
async fn pre_hijack(app: &mut TestApp, github: &GithubStandIn, email: &str) -> String {
    github.simple_user("gho_mallory", 666, email, false).await;
    let flow = start(app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_mallory");
    let res = finish(app, &flow, &code).await;
    assert_eq!(location(&res), "/welcome", "a new user, made by Mallory");
    let cookie = cookie_header(&res);
    assert_eq!(app.session_of(&cookie).await["user"]["email"], email);
    cookie
}

/// The token of the reset link mailed to `to`, once `n` mails in all have arrived.
async fn reset_token_mailed(
    resend: &crate::common::mail::ResendStandIn,
    to: &str,
    n: usize,
) -> String {
    let mails = resend.mail_to(to, n).await;
    let link = mails
        .iter()
        .map(crate::common::mail::link_in)
        .find(|l| l.contains("/reset-password/"))
        .expect("a reset mail");
    let token = link.split("/reset-password/").nth(1).unwrap();
    token.split('?').next().unwrap().to_owned()
}

/// Mallory signs in with her GitHub account again.
async fn mallory_signs_in(app: &mut TestApp, github: &GithubStandIn) -> String {
    let flow = start(app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_mallory");
    location(&finish(app, &flow, &code).await).to_owned()
}

#[actix_web::test]
async fn a_completed_password_reset_drops_links_made_while_the_email_was_unverified() {
    let github = GithubStandIn::start().await;
    let resend = crate::common::mail::ResendStandIn::start().await;
    let mut app = app_with_mail(&github, &resend, &[]).await;
    let mallory = pre_hijack(&mut app, &github, "vic@example.com").await;
    assert_eq!(mallory_signs_in(&mut app, &github).await, "/dash");

    // The victim takes "her" account over with a password reset.
    let res = app
        .auth(post(
            "/api/auth/request-password-reset",
            json!({"email": "vic@example.com", "redirectTo": "/reset"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let token = reset_token_mailed(&resend, "vic@example.com", 2).await;
    let res = app
        .auth(post(
            "/api/auth/reset-password",
            json!({"newPassword": "victims-own-password", "token": token}),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));

    // Mallory's link and her session are gone; her GitHub no longer opens the account.
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "account WHERE provider_id = 'github'"), 0);
    assert_eq!(app.session_of(&mallory).await, Value::Null);
    assert_eq!(
        mallory_signs_in(&mut app, &github).await,
        "/login-error?error=account_not_linked"
    );
    let res = app.sign_in("vic@example.com", "victims-own-password").await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn a_completed_verification_drops_links_made_while_the_email_was_unverified() {
    let github = GithubStandIn::start().await;
    let resend = crate::common::mail::ResendStandIn::start().await;
    let mut app = app_with_mail(&github, &resend, &[]).await;
    let mallory = pre_hijack(&mut app, &github, "val@example.com").await;

    // The sign-up verification mail reached the real owner, who follows it.
    let mails = resend.mail_to("val@example.com", 1).await;
    let link = crate::common::mail::link_in(&mails[0]);
    let path = crate::common::mail::path_of(&link);
    let res = app.auth(TestRequest::get().uri(&path)).await;
    assert_eq!(res.status, 302);

    let mut conn = app.db.conn();
    assert_eq!(
        text(
            &mut conn,
            "SELECT email_verified::text FROM \"user\" WHERE email = 'val@example.com'"
        )
        .as_deref(),
        Some("true")
    );
    assert_eq!(count(&mut conn, "account WHERE provider_id = 'github'"), 0);
    assert_eq!(app.session_of(&mallory).await, Value::Null);
    assert_eq!(
        mallory_signs_in(&mut app, &github).await,
        "/login-error?error=account_not_linked"
    );
}

#[actix_web::test]
async fn links_made_once_the_email_is_verified_survive_a_reset() {
    let github = GithubStandIn::start().await;
    let resend = crate::common::mail::ResendStandIn::start().await;
    let mut app = app_with_mail(&github, &resend, &[]).await;
    // Verified on both sides: implicitly linked to a verified user.
    local_user(&mut app, "kept@example.com", true).await;
    github
        .simple_user("gho_kept", 77, "kept@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_kept");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/dash");
    let session = cookie_header(&res);

    let res = app
        .auth(post(
            "/api/auth/request-password-reset",
            json!({"email": "kept@example.com"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let token = reset_token_mailed(&resend, "kept@example.com", 2).await;
    let res = app
        .auth(post(
            "/api/auth/reset-password",
            json!({"newPassword": "a-new-password-1", "token": token}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "account WHERE provider_id = 'github'"), 1);
    assert_ne!(app.session_of(&session).await, Value::Null);
}

/// The GitHub callback's write to `user` (a provider that now vouches for the address marks the
/// user verified) shows in the next get-session of a session remembered just before.
#[actix_web::test]
async fn a_github_sign_in_that_verifies_the_user_shows_in_get_session() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_first", 900, "late@example.com", false)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_first");
    let first = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&first), "/welcome");
    let cookie = cookie_header(&first);
    assert_eq!(
        app.session_of(&cookie).await["user"]["emailVerified"],
        false
    );

    // GitHub has verified the address since; the next sign-in upgrades the user.
    github
        .simple_user("gho_second", 900, "late@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_second");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/dash");
    assert_eq!(app.session_of(&cookie).await["user"]["emailVerified"], true);
}
