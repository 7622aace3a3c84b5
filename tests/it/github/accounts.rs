//! `link-social`, `list-accounts` and `unlink-account`.

use super::*;

/// Signs a local user in, links GitHub, returns the session cookie.
async fn linked_user(
    app: &mut TestApp,
    github: &GithubStandIn,
    email: &str,
    token: &str,
    id: u64,
) -> String {
    let cookie = local_user(app, email, false).await;
    github.simple_user(token, id, email, true).await;
    let res = app
        .auth(post_with(
            "/api/auth/link-social",
            &cookie,
            json!({"provider": "github", "callbackURL": "/settings", "errorCallbackURL": "/settings/error"}),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["redirect"], true);
    let flow = started(&res);
    let code = github.approve(&flow.url, token);
    let browser = format!("{cookie}; {}", flow.cookie);
    let res = callback(app, &browser, &format!("code={code}&state={}", flow.state)).await;
    assert_eq!(location(&res), "/settings");
    assert!(
        !res.header_all("set-cookie")
            .iter()
            .any(|c| c.contains("session_token")),
        "linking starts no new session"
    );
    cookie
}

#[actix_web::test]
async fn link_list_and_unlink() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    let cookie = linked_user(&mut app, &github, "linker@example.com", "gho_l", 21).await;

    let res = app.auth(get_with("/api/auth/list-accounts", &cookie)).await;
    assert_eq!(res.status, 200);
    let accounts = res.json();
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    for a in accounts {
        let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "accountId",
                "createdAt",
                "id",
                "providerId",
                "scopes",
                "updatedAt",
                "userId"
            ]
        );
    }
    let gh = accounts
        .iter()
        .find(|a| a["providerId"] == "github")
        .unwrap();
    assert_eq!(gh["accountId"], "21");
    assert_eq!(gh["scopes"], json!(["read:user", "user:email"]));
    let credential = accounts
        .iter()
        .find(|a| a["providerId"] == "credential")
        .unwrap();
    assert_eq!(credential["scopes"], json!([]));
    let gh_row = gh["id"].as_str().unwrap().to_owned();
    let credential_row = credential["id"].as_str().unwrap().to_owned();

    // 1.7 shape: the row id. The provider's id is not a row id.
    let res = app
        .auth(post_with(
            "/api/auth/unlink-account",
            &cookie,
            json!({"accountId": "21"}),
        ))
        .await;
    assert_eq!(
        (res.status, res.json()["code"].clone()),
        (400, json!("ACCOUNT_NOT_FOUND"))
    );
    let res = app
        .auth(post_with(
            "/api/auth/unlink-account",
            &cookie,
            json!({"accountId": gh_row}),
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true}));

    // The last account stays, whatever is asked.
    for body in [
        json!({"accountId": credential_row}),
        json!({"accountId": "nope"}),
    ] {
        let res = app
            .auth(post_with("/api/auth/unlink-account", &cookie, body))
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(res.json()["code"], "FAILED_TO_UNLINK_LAST_ACCOUNT");
    }
    let res = app
        .auth(post_with("/api/auth/unlink-account", &cookie, json!({})))
        .await;
    assert_eq!(res.json()["code"], "VALIDATION_ERROR");
}

#[actix_web::test]
async fn unlink_takes_the_old_body_shape_and_needs_a_fresh_session() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    let cookie = linked_user(&mut app, &github, "old@example.com", "gho_o", 31).await;

    // ≤ 1.6: {providerId, accountId?} with the provider's account id.
    let res = app
        .auth(post_with(
            "/api/auth/unlink-account",
            &cookie,
            json!({"providerId": "github", "accountId": "999"}),
        ))
        .await;
    assert_eq!(res.json()["code"], "ACCOUNT_NOT_FOUND");
    let res = app
        .auth(post_with(
            "/api/auth/unlink-account",
            &cookie,
            json!({"providerId": "github", "accountId": "31"}),
        ))
        .await;
    assert_eq!(res.status, 200);
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "account WHERE provider_id = 'github'"), 0);

    // Relink, then {providerId} alone; but only on a fresh session.
    let cookie = linked_user(&mut app, &github, "old2@example.com", "gho_o2", 32).await;
    app.clock.advance(Duration::days(2));
    let res = app
        .auth(post_with(
            "/api/auth/unlink-account",
            &cookie,
            json!({"providerId": "github"}),
        ))
        .await;
    assert_eq!(
        (res.status, res.json()["code"].clone()),
        (403, json!("SESSION_NOT_FRESH"))
    );
}

#[actix_web::test]
async fn concurrent_unlinks_never_remove_the_last_account() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    for round in 0..8u64 {
        let email = format!("racer{round}@example.com");
        let token = format!("gho_race{round}");
        let cookie = linked_user(&mut app, &github, &email, &token, 500 + round).await;
        let accounts = app.auth(get_with("/api/auth/list-accounts", &cookie)).await;
        let ids: Vec<String> = accounts
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 2);
        // Both unlinks in flight at once, one for each of the user's two accounts.
        let seen = app
            .call_concurrently(
                switchboard::platform::role::Role::Auth,
                ids.iter()
                    .map(|id| {
                        post_with(
                            "/api/auth/unlink-account",
                            &cookie,
                            json!({"accountId": id}),
                        )
                    })
                    .collect(),
            )
            .await;
        let mut statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 400],
            "round {round}: exactly one unlink wins"
        );
        let refused = seen.iter().find(|s| s.status == 400).unwrap();
        assert_eq!(refused.json()["code"], "FAILED_TO_UNLINK_LAST_ACCOUNT");
        let left = app.auth(get_with("/api/auth/list-accounts", &cookie)).await;
        assert_eq!(left.json().as_array().unwrap().len(), 1, "round {round}");
    }
}

#[actix_web::test]
async fn link_social_refusals() {
    let github = GithubStandIn::start().await;
    let mut app = app_with(&github, &[]).await;
    let res = app
        .auth(post("/api/auth/link-social", json!({"provider": "github"})))
        .await;
    assert_eq!(res.status, 401);

    // Another email on GitHub than the user's.
    let cookie = local_user(&mut app, "me@example.com", true).await;
    github
        .simple_user("gho_x", 41, "someone-else@example.com", true)
        .await;
    let res = app
        .auth(post_with("/api/auth/link-social", &cookie, json!({"provider": "github", "callbackURL": "/settings", "errorCallbackURL": "/settings/error"})))
        .await;
    let flow = started(&res);
    let code = github.approve(&flow.url, "gho_x");
    let res = callback(
        &mut app,
        &format!("{cookie}; {}", flow.cookie),
        &format!("code={code}&state={}", flow.state),
    )
    .await;
    assert_eq!(location(&res), "/settings/error?error=email_does_not_match");

    // A GitHub account already linked to someone else.
    let other = linked_user(&mut app, &github, "owner@example.com", "gho_own", 42).await;
    assert!(!other.is_empty());
    github
        .simple_user("gho_steal", 42, "me@example.com", true)
        .await;
    let res = app
        .auth(post_with("/api/auth/link-social", &cookie, json!({"provider": "github", "callbackURL": "/settings", "errorCallbackURL": "/settings/error"})))
        .await;
    let flow = started(&res);
    let code = github.approve(&flow.url, "gho_steal");
    let res = callback(
        &mut app,
        &format!("{cookie}; {}", flow.cookie),
        &format!("code={code}&state={}", flow.state),
    )
    .await;
    assert_eq!(
        location(&res),
        "/settings/error?error=account_already_linked_to_different_user"
    );

    // The session that asked is gone by the time GitHub answers.
    github
        .simple_user("gho_gone", 43, "me@example.com", true)
        .await;
    let res = app
        .auth(post_with("/api/auth/link-social", &cookie, json!({"provider": "github", "callbackURL": "/settings", "errorCallbackURL": "/settings/error"})))
        .await;
    let flow = started(&res);
    let code = github.approve(&flow.url, "gho_gone");
    let signed_out = app
        .auth(post_with("/api/auth/sign-out", &cookie, json!({})))
        .await;
    assert_eq!(signed_out.status, 200);
    let res = callback(
        &mut app,
        &flow.cookie,
        &format!("code={code}&state={}", flow.state),
    )
    .await;
    assert_eq!(
        location(&res),
        "/settings/error?error=unable_to_link_account"
    );
    let mut conn = app.db.conn();
    assert_eq!(count(&mut conn, "account WHERE account_id = '43'"), 0);
}
