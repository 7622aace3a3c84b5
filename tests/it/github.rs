//! GitHub sign-in end to end against a GitHub stand-in on 127.0.0.1 (wiremock): the authorize
//! URL, the callback and its error codes, the linking rules, link-social, list-accounts and
//! unlink-account, and what lands in the database.

use crate::common::TestApp;
use crate::common::app::Seen;
use crate::common::auth::{cookie_header, get_with, post, post_with, set_cookies};
use crate::common::rows::{count, exec, text};
use actix_web::test::TestRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLIENT_ID: &str = "gh-client-id";
const CLIENT_SECRET: &str = "gh-client-secret";
const REDIRECT_URI: &str = "http://localhost:5001/api/auth/callback/github";

/// A code GitHub issued for one authorize request: the PKCE challenge it saw, the token it
/// will hand out.
struct Grant {
    challenge: String,
    token: String,
}

/// GitHub's token endpoint as GitHub behaves: it answers every error with HTTP 200 and
/// `{error, error_description}`, and it checks `code_verifier` against the challenge it was
/// shown at authorize time.
#[derive(Clone, Default)]
struct TokenEndpoint {
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    /// Extra fields of every successful token response (e.g. lifetimes).
    extra: Arc<Mutex<serde_json::Map<String, Value>>>,
}

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let error = |code: &str| {
            ResponseTemplate::new(200).set_body_json(json!({
                "error": code,
                "error_description": format!("stand-in says {code}"),
                "error_uri": "https://docs.github.com/apps/troubleshooting",
            }))
        };
        if request.headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
            return ResponseTemplate::new(200)
                .set_body_string("error=not_json")
                .insert_header("content-type", "application/x-www-form-urlencoded");
        }
        if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return error("incorrect_client_credentials");
        }
        if form.get("redirect_uri").map(String::as_str) != Some(REDIRECT_URI) {
            return error("redirect_uri_mismatch");
        }
        // Codes are single use, as at GitHub.
        let grant = form
            .get("code")
            .and_then(|c| self.grants.lock().unwrap().remove(c));
        let Some(grant) = grant else {
            return error("bad_verification_code");
        };
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if verifier.len() != 128 || challenge_of(&verifier) != grant.challenge {
            return error("bad_verification_code");
        }
        let mut body = json!({
            "access_token": grant.token,
            "token_type": "bearer",
            "scope": "read:user,user:email",
        });
        if let Value::Object(fields) = &mut body {
            fields.extend(self.extra.lock().unwrap().clone());
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

struct GithubStandIn {
    server: MockServer,
    tokens: TokenEndpoint,
}

impl GithubStandIn {
    async fn start() -> Self {
        let server = MockServer::start().await;
        let tokens = TokenEndpoint::default();
        Mock::given(method("POST"))
            .and(path("/login/oauth/access_token"))
            .respond_with(tokens.clone())
            .mount(&server)
            .await;
        Self { server, tokens }
    }

    fn env(&self) -> Vec<(String, String)> {
        let uri = self.server.uri();
        vec![
            ("GITHUB_CLIENT_ID".into(), CLIENT_ID.into()),
            ("GITHUB_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            (
                "SWITCHBOARD__AUTH__GITHUB__AUTHORIZE_URL".into(),
                format!("{uri}/login/oauth/authorize"),
            ),
            (
                "SWITCHBOARD__AUTH__GITHUB__TOKEN_URL".into(),
                format!("{uri}/login/oauth/access_token"),
            ),
            ("SWITCHBOARD__AUTH__GITHUB__API_URL".into(), uri),
        ]
    }

    /// The user approves at GitHub: a code bound to the authorize URL's PKCE challenge.
    fn approve(&self, authorize_url: &str, token: &str) -> String {
        let q = query_of(authorize_url);
        let code = format!("code-{}", &q["state"][..8]);
        self.tokens.grants.lock().unwrap().insert(
            code.clone(),
            Grant {
                challenge: q["code_challenge"].clone(),
                token: token.to_owned(),
            },
        );
        code
    }

    /// `/user` and `/user/emails` for one access token; they insist on the headers GitHub
    /// insists on.
    async fn user(&self, token: &str, profile: Value, emails: Value) {
        for (p, body) in [("/user", profile), ("/user/emails", emails)] {
            Mock::given(method("GET"))
                .and(path(p))
                .and(header("authorization", format!("Bearer {token}").as_str()))
                .and(header_exists("user-agent"))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .mount(&self.server)
                .await;
        }
    }

    /// A GitHub user with one primary email.
    async fn simple_user(&self, token: &str, id: u64, email: &str, verified: bool) {
        self.user(
            token,
            json!({"id": id, "login": "octo", "name": "Octo Cat", "email": null,
                   "avatar_url": "https://avatars.example/u/1"}),
            json!([{"email": email, "primary": true, "verified": verified, "visibility": "private"}]),
        )
        .await;
    }
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn app_with(github: &GithubStandIn, extra: &[(&str, &str)]) -> TestApp {
    let env = github.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    TestApp::with_env(&all)
}

/// The page the browser is on when it starts: `/dash` after sign-in, `/welcome` for new users.
fn flow_body() -> Value {
    json!({"provider": "github", "callbackURL": "/dash", "newUserCallbackURL": "/welcome",
           "errorCallbackURL": "/login-error"})
}

/// A started flow: the authorize URL, its state, and the browser's state cookie.
struct Started {
    url: String,
    state: String,
    cookie: String,
}

async fn start(app: &mut TestApp, body: Value) -> Started {
    let res = app.auth(post("/api/auth/sign-in/social", body)).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    started(&res)
}

fn started(res: &Seen) -> Started {
    let url = res.json()["url"].as_str().unwrap().to_owned();
    let state = query_of(&url)["state"].clone();
    Started {
        url,
        state,
        cookie: cookie_header(res),
    }
}

async fn callback(app: &mut TestApp, cookie: &str, query: &str) -> Seen {
    let uri = format!("/api/auth/callback/github?{query}");
    let req = if cookie.is_empty() {
        TestRequest::get().uri(&uri)
    } else {
        get_with(&uri, cookie)
    };
    app.auth(req).await
}

/// GitHub sends the browser back with the code.
async fn finish(app: &mut TestApp, flow: &Started, code: &str) -> Seen {
    callback(
        app,
        &flow.cookie,
        &format!("code={code}&state={}", flow.state),
    )
    .await
}

fn location(res: &Seen) -> &str {
    assert_eq!(res.status, 302, "{}", String::from_utf8_lossy(&res.body));
    res.header("location").unwrap()
}

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

/// A local email+password user, verified or not.
async fn local_user(app: &mut TestApp, email: &str, verified: bool) -> String {
    let cookie = app.signed_in(email).await;
    let mut conn = app.db.conn();
    exec(
        &mut conn,
        &format!("UPDATE \"user\" SET email_verified = {verified} WHERE email = '{email}'"),
    );
    cookie
}

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
