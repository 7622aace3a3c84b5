//! Which user a GitHub account signs in as: the linking rules between GitHub and local
//! users, the sign-up switches, refused redirect targets, `sign-in/social` options, the form
//! post callback.

use super::*;

#[actix_web::test]
async fn an_unverified_github_email_does_not_take_over_a_verified_local_user() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    local_user(&mut app, "victim@example.com", true).await;
    github
        .simple_user("gho_u", 13, "victim@example.com", false)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_u");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/login-error?error=account_not_linked");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "account WHERE provider_id = 'github'"), 0);
    assert_eq!(count(&mut conn, "session"), 1, "only the sign-up's");
}

#[actix_web::test]
async fn a_verified_github_email_does_not_link_to_an_unverified_local_user() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    local_user(&mut app, "squat@example.com", false).await;
    github
        .simple_user("gho_v", 14, "squat@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_v");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/login-error?error=account_not_linked");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "account WHERE provider_id = 'github'"), 0);
}

#[actix_web::test]
async fn verified_on_both_sides_links_implicitly() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    local_user(&mut app, "both@example.com", true).await;
    github
        .simple_user("gho_b", 15, "Both@Example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_b");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/dash", "an existing user, not a new one");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "\"user\""), 1);
    assert_eq!(count(&mut conn, "account"), 2);
    let session = app.session_of(&cookie_header(&res)).await;
    assert_eq!(session["user"]["email"], "both@example.com");

    // Linking switched off: the same situation is refused.
    let mut off = app_with(
        &github,
        &[("SWITCHBOARD__AUTH__ACCOUNT_LINKING__ENABLED", "false")],
    )
    .await;
    local_user(&mut off, "both@example.com", true).await;
    github
        .simple_user("gho_b2", 16, "both@example.com", true)
        .await;
    let flow = start(&mut off, flow_body()).await;
    let code = github.approve(&flow.url, "gho_b2");
    assert_eq!(
        location(&finish(&mut off, &flow, &code).await),
        "/login-error?error=account_not_linked"
    );
}

#[actix_web::test]
async fn disable_sign_up_lets_only_existing_users_in() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(
        &github,
        &[("SWITCHBOARD__AUTH__GITHUB__DISABLE_SIGN_UP", "true")],
    )
    .await;
    github
        .simple_user("gho_new", 21, "new@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_new");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/login-error?error=signup_disabled");
    assert!(
        res.header_all("set-cookie")
            .iter()
            .all(|c| !c.contains("session_token=")),
        "no session"
    );
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "\"user\""), 0);
    assert_eq!(count(&mut conn, "account"), 0);
    assert_eq!(count(&mut conn, "session"), 0);

    // A user who already exists (and whose email both sides vouch for) still signs in.
    local_user(&mut app, "old@example.com", true).await;
    github
        .simple_user("gho_old", 22, "old@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_old");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/dash");
}

#[actix_web::test]
async fn disable_implicit_sign_up_creates_users_only_on_request() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(
        &github,
        &[(
            "SWITCHBOARD__AUTH__GITHUB__DISABLE_IMPLICIT_SIGN_UP",
            "true",
        )],
    )
    .await;
    github
        .simple_user("gho_a", 23, "quiet@example.com", true)
        .await;
    github
        .simple_user("gho_b", 23, "quiet@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_a");
    assert_eq!(
        location(&finish(&mut app, &flow, &code).await),
        "/login-error?error=signup_disabled",
        "the sign-in button does not create users"
    );
    assert_eq!(count(&mut app.db.conn(), "\"user\""), 0);

    let mut body = flow_body();
    body["requestSignUp"] = json!(true);
    let flow = start(&mut app, body).await;
    let code = github.approve(&flow.url, "gho_b");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/welcome", "the sign-up button does");
    assert_eq!(
        app.session_of(&cookie_header(&res)).await["user"]["email"],
        "quiet@example.com"
    );
}

#[actix_web::test]
async fn untrusted_redirect_targets_are_refused_before_anything_is_written() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    for (field, code) in [
        ("callbackURL", "INVALID_CALLBACK_URL"),
        ("newUserCallbackURL", "INVALID_NEW_USER_CALLBACK_URL"),
        ("errorCallbackURL", "INVALID_ERROR_CALLBACK_URL"),
    ] {
        for target in [
            "https://evil.example/x",
            "//evil.example",
            "/%2F%2Fevil.example",
        ] {
            let res = app
                .auth(post(
                    "/api/auth/sign-in/social",
                    json!({"provider": "github", field: target}),
                ))
                .await;
            assert_eq!(res.status, 403, "{field} {target}");
            assert_eq!(res.json()["code"], code);
            assert!(res.header("set-cookie").is_none());
        }
    }
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "verification"), 0);

    // Trusted absolute URLs are fine.
    let flow = start(
        &mut app,
        json!({"provider": "github", "callbackURL": "http://localhost:5001/dash"}),
    )
    .await;
    assert_eq!(flow.state.len(), 32);
}

#[actix_web::test]
async fn sign_in_social_options_and_refusals() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[("SWITCHBOARD__AUTH__GITHUB__SCOPES", "repo")]).await;

    let res = app
        .auth(post(
            "/api/auth/sign-in/social",
            json!({"provider": "github", "disableRedirect": true, "scopes": ["gist", "repo"], "loginHint": "octo"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["redirect"], false);
    assert!(res.header("location").is_none());
    let q = query_of(res.json()["url"].as_str().unwrap());
    assert_eq!(q["scope"], "read:user user:email repo gist");
    assert_eq!(q["login"], "octo");
    let state = q["state"].clone();
    let mut conn = app.db.conn();
    let stored: Value = serde_json::from_str(
        &text(
            &mut conn,
            &format!("SELECT value FROM verification WHERE identifier = 'auth-state:{state}'"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stored["callbackURL"], "http://localhost:5001",
        "Better Auth's default"
    );

    for (body, status, code) in [
        (json!({"provider": "google"}), 404, "PROVIDER_NOT_FOUND"),
        (
            json!({"provider": "github", "idToken": {"token": "x"}}),
            404,
            "ID_TOKEN_NOT_SUPPORTED",
        ),
        (json!({}), 400, "VALIDATION_ERROR"),
        (
            json!({"provider": "github", "scopes": "repo"}),
            400,
            "VALIDATION_ERROR",
        ),
    ] {
        let res = app
            .auth(post("/api/auth/sign-in/social", body.clone()))
            .await;
        assert_eq!(res.status, status, "{body}");
        assert_eq!(res.json()["code"], code, "{body}");
    }

    // GitHub not configured: PROVIDER_NOT_FOUND, and the callback says so too.
    let mut bare = TestApp::new();
    let res = bare
        .auth(post(
            "/api/auth/sign-in/social",
            json!({"provider": "github"}),
        ))
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["code"], "PROVIDER_NOT_FOUND");
    let res = callback(&mut bare, "", "code=x&state=y").await;
    assert_eq!(
        location(&res),
        "http://localhost:5001/api/auth/error?error=oauth_provider_not_found"
    );
}

#[actix_web::test]
async fn a_form_post_callback_becomes_the_get_form() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    let res = app
        .auth(
            TestRequest::post()
                .uri("/api/auth/callback/github")
                .insert_header(("origin", "https://github.com"))
                .insert_header(("cookie", "unrelated=1"))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload("code=abc&state=xyz%2B1"),
        )
        .await;
    assert_eq!(
        location(&res),
        "http://localhost:5001/api/auth/callback/github?code=abc&state=xyz%2B1"
    );
}
