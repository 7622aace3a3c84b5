//! Signing in with GitHub: the flow end to end, the state (replay, expiry, another browser,
//! PKCE), and GitHub's errors reaching the error callback URL.

use super::*;

#[actix_web::test]
async fn a_new_github_user_signs_in_end_to_end() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;

    let res = app
        .auth(post("/api/auth/sign-in/social", flow_body()))
        .await;
    assert_eq!(res.status, 200);
    let body = res.json();
    assert_eq!(body["redirect"], true);
    let url = body["url"].as_str().unwrap();
    assert_eq!(res.header("location"), Some(url));
    assert!(
        url.starts_with(&format!("{}/login/oauth/authorize?", github.server.uri())),
        "{url}"
    );
    let q = query_of(url);
    let mut names: Vec<&str> = q.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["scope"], "read:user user:email");
    assert_eq!(q["redirect_uri"], REDIRECT_URI);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    let state = &q["state"];
    assert_eq!(state.len(), 32);
    assert!(
        state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let set = res.header("set-cookie").unwrap();
    assert!(
        set.starts_with(&format!("better-auth.state={state}.")),
        "{set}"
    );
    assert!(
        set.contains("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"),
        "{set}"
    );

    // The state row, in Better Auth's shape.
    let mut conn = app.db.conn();
    let value = text(
        &mut conn,
        &format!("SELECT value FROM verification WHERE identifier = 'auth-state:{state}'"),
    )
    .unwrap();
    let stored: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(stored["callbackURL"], "/dash");
    assert_eq!(stored["newUserURL"], "/welcome");
    assert_eq!(stored["errorURL"], "/login-error");
    assert_eq!(stored["oauthState"], state.as_str());
    let verifier = stored["codeVerifier"].as_str().unwrap();
    assert_eq!(verifier.len(), 128);
    assert_eq!(challenge_of(verifier), q["code_challenge"]);
    let ttl = stored["expiresAt"].as_i64().unwrap() - app.clock_now().timestamp_millis();
    assert_eq!(ttl, 600_000);

    // GitHub: the user approves, comes back with a code.
    let flow = started(&res);
    let code = github.approve(&flow.url, "gho_firstToken123");
    github
        .simple_user("gho_firstToken123", 4242, "Octo@Example.com", true)
        .await;
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/welcome");
    let cookies = res.header_all("set-cookie");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("better-auth.state=; Max-Age=0")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("better-auth.session_token=") && c.contains("Max-Age=604800")),
        "{cookies:?}"
    );

    // Rows: the user (from GitHub), the account with its token sealed, the state consumed.
    assert_eq!(count(&mut conn, "verification"), 0);
    assert_eq!(
        text(
            &mut conn,
            "SELECT email || '|' || email_verified || '|' || name || '|' || image FROM \"user\""
        )
        .unwrap(),
        "octo@example.com|true|Octo Cat|https://avatars.example/u/1"
    );
    assert_eq!(
        text(
            &mut conn,
            "SELECT provider_id || '|' || account_id || '|' || scope FROM account"
        )
        .unwrap(),
        "github|4242|read:user,user:email"
    );
    let stored_token = text(&mut conn, "SELECT access_token FROM account").unwrap();
    assert_ne!(stored_token, "gho_firstToken123");
    assert!(stored_token.starts_with("v1:"), "{stored_token}");
    assert!(!stored_token.contains("gho_"), "{stored_token}");
    assert_eq!(text(&mut conn, "SELECT password FROM account"), None);

    // The session cookie works.
    let session = app.session_of(&cookie_header(&res)).await;
    assert_eq!(session["user"]["email"], "octo@example.com");
    assert_eq!(session["user"]["emailVerified"], true);

    // GitHub saw the verifier and the headers it requires.
    let requests = github.server.received_requests().await.unwrap();
    let exchange = requests
        .iter()
        .find(|r| r.url.path() == "/login/oauth/access_token")
        .unwrap();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&exchange.body)
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code_verifier"], verifier);
    let user_call = requests.iter().find(|r| r.url.path() == "/user").unwrap();
    assert_eq!(
        user_call
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer gho_firstToken123"
    );
}

#[actix_web::test]
async fn a_returning_github_user_goes_to_the_callback_url_with_fresh_tokens() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_one", 7, "ret@example.com", true)
        .await;
    github
        .simple_user("gho_two", 7, "ret@example.com", true)
        .await;

    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_one");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/welcome");
    let mut conn = app.db.conn();
    let first = text(&mut conn, "SELECT access_token FROM account").unwrap();

    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_two");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/dash");
    assert_eq!(count(&mut conn, "\"user\""), 1);
    assert_eq!(count(&mut conn, "account"), 1);
    assert_ne!(
        text(&mut conn, "SELECT access_token FROM account").unwrap(),
        first
    );
    assert_eq!(count(&mut conn, "session"), 2);
}

#[actix_web::test]
async fn a_replayed_state_is_a_state_mismatch() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_r", 8, "replay@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_r");
    assert_eq!(location(&finish(&mut app, &flow, &code).await), "/welcome");

    let replay = finish(&mut app, &flow, &code).await;
    assert_eq!(
        location(&replay),
        "http://localhost:5001/api/auth/error?error=state_mismatch"
    );
    assert!(set_cookies(&replay).is_empty(), "no session from a replay");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "session"), 1);
}

#[actix_web::test]
async fn an_expired_state_is_a_state_mismatch() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_e", 9, "late@example.com", true)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_e");
    app.clock.advance(Duration::minutes(11));
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/login-error?error=state_mismatch");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "\"user\""), 0);
    assert_eq!(
        count(&mut conn, "verification"),
        0,
        "the expired row is gone too"
    );
}

#[actix_web::test]
async fn the_state_must_come_with_this_browsers_cookie() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_c", 10, "csrf@example.com", true)
        .await;
    let victim = start(&mut app, flow_body()).await;
    let attacker = start(&mut app, flow_body()).await;
    let code = github.approve(&attacker.url, "gho_c");
    let query = format!("code={code}&state={}", attacker.state);

    // No cookie, the cookie of another flow, a forged cookie: all state_mismatch, and the
    // flow's own row is left for its own browser.
    let forged = attacker.cookie.replace(&attacker.state, &victim.state);
    for cookie in ["", victim.cookie.as_str(), forged.as_str()] {
        let res = callback(&mut app, cookie, &query).await;
        assert_eq!(
            location(&res),
            "/login-error?error=state_mismatch",
            "{cookie}"
        );
        assert!(res.header("set-cookie").is_none(), "{cookie}");
    }
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "verification"), 2);
    assert_eq!(count(&mut conn, "\"user\""), 0);

    // No state at all.
    let res = callback(&mut app, &attacker.cookie, &format!("code={code}")).await;
    assert_eq!(
        location(&res),
        "http://localhost:5001/api/auth/error?error=state_not_found"
    );
    // The real browser still finishes.
    assert_eq!(
        location(&finish(&mut app, &attacker, &code).await),
        "/welcome"
    );
}

#[actix_web::test]
async fn a_code_issued_for_another_flow_fails_pkce() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github
        .simple_user("gho_p", 11, "pkce@example.com", true)
        .await;
    let mine = start(&mut app, flow_body()).await;
    let other = start(&mut app, flow_body()).await;
    // The code was issued against the other flow's challenge; this flow's verifier won't do.
    let code = github.approve(&other.url, "gho_p");
    let res = finish(&mut app, &mine, &code).await;
    assert_eq!(location(&res), "/login-error?error=invalid_code");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "\"user\""), 0);
    assert_eq!(count(&mut conn, "session"), 0);
}

#[actix_web::test]
async fn github_errors_reach_the_error_callback_url() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;

    // The user said no at GitHub.
    let flow = start(&mut app, flow_body()).await;
    let res = callback(
        &mut app,
        &flow.cookie,
        &format!(
            "error=access_denied&error_description=user%20denied&state={}",
            flow.state
        ),
    )
    .await;
    assert_eq!(
        location(&res),
        "/login-error?error=access_denied&error_description=user+denied"
    );

    // An error in a 200 from the token endpoint (an unknown code).
    let flow = start(&mut app, flow_body()).await;
    let res = finish(&mut app, &flow, "never-issued").await;
    assert_eq!(location(&res), "/login-error?error=invalid_code");

    // No code at all.
    let flow = start(&mut app, flow_body()).await;
    let res = callback(&mut app, &flow.cookie, &format!("state={}", flow.state)).await;
    assert_eq!(location(&res), "/login-error?error=no_code");

    // Without errorCallbackURL, errors go to the auth server's error page.
    let flow = start(
        &mut app,
        json!({"provider": "github", "callbackURL": "/dash"}),
    )
    .await;
    let res = finish(&mut app, &flow, "never-issued").await;
    assert_eq!(
        location(&res),
        "http://localhost:5001/api/auth/error?error=invalid_code"
    );
}

#[actix_web::test]
async fn a_token_endpoint_that_fails_is_invalid_code() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    github.server.reset().await;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&github.server)
        .await;
    let flow = start(&mut app, flow_body()).await;
    let res = finish(&mut app, &flow, "whatever").await;
    assert_eq!(location(&res), "/login-error?error=invalid_code");
}

#[actix_web::test]
async fn user_info_failures() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;

    // /user answers 401 (nothing mounted for this token: wiremock's 404 is as good).
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_nobody");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/login-error?error=unable_to_get_user_info");

    // A GitHub user without any email.
    github
        .user(
            "gho_noemail",
            json!({"id": 12, "login": "ghost", "name": null, "email": null}),
            json!([]),
        )
        .await;
    let flow = start(&mut app, flow_body()).await;
    let code = github.approve(&flow.url, "gho_noemail");
    let res = finish(&mut app, &flow, &code).await;
    assert_eq!(location(&res), "/login-error?error=email_not_found");
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "\"user\""), 0);
}
