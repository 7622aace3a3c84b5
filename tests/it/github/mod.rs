//! GitHub sign-in end to end against a GitHub stand-in on 127.0.0.1 (wiremock): the authorize
//! URL, the callback and its error codes, the linking rules, link-social, list-accounts and
//! unlink-account, and what lands in the database. The stand-in and the flow helpers are here;
//! the tests are split by flow.

mod accounts;
mod linking;
mod sign_in;
mod takeover;

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
