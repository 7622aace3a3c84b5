//! `switchboard db adopt` on databases the real Better Auth made (`tests/adopt/seed.mjs`: its own
//! migrator, the Drizzle schema Better Auth's CLI generates pushed by drizzle-kit, custom model
//! names; better-auth 1.7.25 and 1.3.9), then switchboard serves the users Better Auth wrote: passwords, session cookies, JWTs,
//! a pending reset, a GitHub-linked account, a column of the app's own.
//!
//! Split by flow: here the seeded layouts adopted and served; `plan` (dry run, rollback,
//! refusals, the command's output, a Prisma layout).

mod plan;

use crate::common::auth::{cookie_header, get_with, post};
use crate::common::db::TestDb;
use crate::common::{LiveServer, TestApp, app::test_config};
use actix_web::http::header;
use actix_web::test::TestRequest;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;
use switchboard::db::adopt::{self, AdoptError, Options};
use switchboard::db::migrate;
use switchboard::platform::role::Role;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "dev-only-test-better-auth-secret-0123456789";

fn adopt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adopt")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `npm ci` when `node_modules` is missing or older than `package-lock.json`, once per process.
fn ensure_node_modules() {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return;
    }
    let dir = adopt_dir();
    let lock = modified(&dir.join("package-lock.json")).expect("tests/adopt/package-lock.json");
    let fresh = modified(&dir.join("node_modules/.package-lock.json")).is_some_and(|m| m >= lock);
    if !fresh {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("running npm (Node 20 and npm are needed): {e}"));
        assert!(status.success(), "npm ci failed: {status}");
    }
    *installed = true;
}

#[derive(Clone, Copy)]
struct Layout {
    better_auth: &'static str,
    drizzle: bool,
    custom_names: bool,
}

impl Layout {
    fn table_map(self) -> Vec<String> {
        if self.custom_names {
            vec!["user=users,account=accounts".to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// An empty database, filled by the real Better Auth. Returns what the seed wrote.
fn seeded(layout: Layout) -> (TestDb, Value) {
    ensure_node_modules();
    let db = TestDb::empty();
    let out = Command::new("node")
        .arg("seed.mjs")
        .current_dir(adopt_dir())
        .env("PG_URL", db.url())
        .env("SECRET", SECRET)
        .env("BA", layout.better_auth)
        .env(
            "LAYOUT",
            if layout.drizzle {
                "drizzle"
            } else {
                "migrator"
            },
        )
        .env("CUSTOM_NAMES", if layout.custom_names { "1" } else { "0" })
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "seed.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let seed: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    (db, seed)
}

fn options(layout: Layout) -> Options {
    Options {
        table_map: layout.table_map(),
        // The seed wrote its rows a moment ago; the busy check has tests of its own.
        quiet_secs: 0,
        ..Options::default()
    }
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every column, constraint and index in `public`, as text, in a stable order.
fn schema_of(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS line
         FROM information_schema.columns WHERE table_schema = 'public'
         UNION ALL
         SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace
         UNION ALL
         SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
         ORDER BY 1",
    )
    .load::<Line>(conn)
    .unwrap()
    .into_iter()
    .map(|l| l.line)
    .collect()
}

/// A digest of every row of every table in `public`.
fn data_of(conn: &mut PgConnection) -> Vec<String> {
    let tables: Vec<Line> = diesel::sql_query(
        "SELECT tablename::text AS line FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .load(conn)
    .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let q = migrate::quote_ident(&t.line);
            let digest: Line = diesel::sql_query(format!(
                "SELECT '{}' || ' ' || coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '-') AS line FROM {q} r",
                t.line
            ))
            .get_result(conn)
            .unwrap();
            digest.line
        })
        .collect()
}

fn refused(result: Result<adopt::Outcome, AdoptError>) -> String {
    match result {
        Err(AdoptError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Adopts, migrates, and checks through switchboard's HTTP API that nobody is signed out.
async fn adopt_and_serve(layout: Layout) {
    let (db, seed) = seeded(layout);
    let mut conn = db.conn();
    let outcome = adopt::run(&mut conn, &options(layout)).unwrap();
    assert!(outcome.applied);
    let plan = outcome.plan.describe();
    assert!(
        plan.contains("column user.plan (text): not Better Auth's, kept with its data"),
        "{plan}"
    );
    // `migrate` continues after the adopted migration.
    let applied = migrate::run_pending(&mut conn).unwrap();
    assert!(!applied.is_empty());
    assert!(!applied.contains(&outcome.version), "{applied:?}");
    assert!(migrate::run_pending(&mut conn).unwrap().is_empty());

    // The adopted tables are the first migration's, plus the app's own column.
    let fresh = TestDb::new();
    let want: Vec<String> = schema_of(&mut fresh.conn());
    let mut got = schema_of(&mut conn);
    got.retain(|l| !l.starts_with("user.plan "));
    assert_eq!(got, want);

    let plan_of: Option<String> =
        diesel::sql_query("SELECT plan AS line FROM \"user\" WHERE email = 'alice@example.com'")
            .get_result::<PlanCol>(&mut conn)
            .unwrap()
            .line;
    assert_eq!(plan_of.as_deref(), Some("pro"));
    drop(conn);

    let github = github_stand_in(&seed).await;
    let uri = github.uri();
    let authorize = format!("{uri}/login/oauth/authorize");
    let token_url = format!("{uri}/login/oauth/access_token");
    let config = test_config(&[
        ("DATABASE_URL", db.url()),
        ("GITHUB_CLIENT_ID", "gh-client-id"),
        ("GITHUB_CLIENT_SECRET", "gh-client-secret"),
        ("SWITCHBOARD__AUTH__GITHUB__AUTHORIZE_URL", &authorize),
        ("SWITCHBOARD__AUTH__GITHUB__TOKEN_URL", &token_url),
        ("SWITCHBOARD__AUTH__GITHUB__API_URL", &uri),
    ]);
    let mut app = TestApp::from_parts(db, config);

    // Each old session cookie is accepted by get-session.
    for user in seed["users"].as_array().unwrap() {
        let cookie = user["cookie"].as_str().unwrap();
        let session = app
            .auth(get_with("/api/auth/get-session", cookie))
            .await
            .json();
        assert_eq!(session["user"]["email"], user["email"], "{session}");
        assert_eq!(session["user"]["id"], user["id"]);
    }
    // Each old password signs in.
    let alice = &seed["users"][0];
    let res = app
        .sign_in(
            alice["email"].as_str().unwrap(),
            alice["password"].as_str().unwrap(),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));

    // The old JWT is accepted by the connectors role's /api/me, which fetches the JWKS over
    // HTTP from a real auth listener on the adopted database: the same kid is served.
    let jwks = app.get(Role::Auth, "/api/auth/jwks").await;
    assert_eq!(jwks.status, 200);
    let kids: Vec<String> = jwks.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kids.contains(&seed["kid"].as_str().unwrap().to_owned()),
        "{kids:?}"
    );
    let auth = LiveServer::serve(Role::Auth, app.platform.clone(), app.clock.clone(), None).await;
    let jwks_url = auth.url("/api/auth/jwks");
    let mut connectors = TestApp::with_env(&[("AUTH_JWKS_URL", jwks_url.as_str())]);
    connectors.platform.clock = app.clock.clone();
    connectors.clock = app.clock.clone();
    let me = |token: String| {
        TestRequest::get()
            .uri("/api/me")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
    };
    let res = connectors
        .call(
            Role::Connectors,
            me(seed["jwt"].as_str().unwrap().to_owned()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["id"], alice["id"], "{}", res.json());
    // And switchboard signs new ones with the adopted key.
    let token = app
        .auth(get_with(
            "/api/auth/token",
            alice["cookie"].as_str().unwrap(),
        ))
        .await
        .json();
    assert_eq!(
        crate::jwt::decode_part(token["token"].as_str().unwrap(), 0)["kid"],
        seed["kid"]
    );
    let res = connectors
        .call(
            Role::Connectors,
            me(token["token"].as_str().unwrap().to_owned()),
        )
        .await;
    assert_eq!(res.status, 200);
    auth.stop().await;

    // The pending reset link resets.
    let bob = &seed["users"][1];
    let res = app
        .auth(post(
            "/api/auth/reset-password",
            json!({"newPassword": "bob-new-password-3", "token": seed["resetToken"]}),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = app
        .sign_in(bob["email"].as_str().unwrap(), "bob-new-password-3")
        .await;
    assert_eq!(res.status, 200);

    // The GitHub-linked user signs in through the stand-in as the user Better Auth linked
    // (a returning user: the callback URL, not the new-user one).
    let res = app
        .auth(post(
            "/api/auth/sign-in/social",
            json!({"provider": "github", "callbackURL": "/dash", "newUserCallbackURL": "/welcome"}),
        ))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let url = res.json()["url"].as_str().unwrap().to_owned();
    let state: String = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let res = app
        .auth(get_with(
            &format!("/api/auth/callback/github?code=gh-code&state={state}"),
            &cookie_header(&res),
        ))
        .await;
    assert_eq!(res.status, 302, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("location"), Some("/dash"));
    let session = app.session_of(&cookie_header(&res)).await;
    assert_eq!(session["user"]["id"], seed["github"]["id"], "{session}");
    let mut conn = app.db.conn();
    let accounts: Option<String> = diesel::sql_query(
        "SELECT count(*)::text AS line FROM account WHERE provider_id = 'github'",
    )
    .get_result::<PlanCol>(&mut conn)
    .unwrap()
    .line;
    assert_eq!(accounts.as_deref(), Some("1"));
}

/// GitHub for the seeded GitHub user (id 4242): any code buys a token, `/user` and
/// `/user/emails` answer for it.
async fn github_stand_in(seed: &Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "gho_after_adopt", "token_type": "bearer", "scope": "read:user,user:email"}),
        ))
        .mount(&server)
        .await;
    let email = seed["github"]["email"].as_str().unwrap();
    for (p, body) in [
        (
            "/user",
            json!({"id": 4242, "login": "octo", "name": "Octo", "email": null,
                   "avatar_url": "https://avatars.example/u/1"}),
        ),
        (
            "/user/emails",
            json!([{"email": email, "primary": true, "verified": true, "visibility": "private"}]),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .and(header("authorization", "Bearer gho_after_adopt"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    server
}

#[derive(QueryableByName)]
struct PlanCol {
    #[diesel(sql_type = Nullable<Text>)]
    line: Option<String>,
}

const MIGRATOR_17: Layout = Layout {
    better_auth: "1.7",
    drizzle: false,
    custom_names: false,
};
const DRIZZLE_17_CUSTOM: Layout = Layout {
    better_auth: "1.7",
    drizzle: true,
    custom_names: true,
};
const MIGRATOR_13_CUSTOM: Layout = Layout {
    better_auth: "1.3",
    drizzle: false,
    custom_names: true,
};
const DRIZZLE_13: Layout = Layout {
    better_auth: "1.3",
    drizzle: true,
    custom_names: false,
};

#[actix_web::test]
async fn adopts_better_auth_1_7_own_migrator() {
    adopt_and_serve(MIGRATOR_17).await;
}

#[actix_web::test]
async fn adopts_better_auth_1_7_drizzle_with_custom_model_names() {
    adopt_and_serve(DRIZZLE_17_CUSTOM).await;
}

#[actix_web::test]
async fn adopts_better_auth_1_3_own_migrator_with_custom_model_names() {
    adopt_and_serve(MIGRATOR_13_CUSTOM).await;
}

#[actix_web::test]
async fn adopts_better_auth_1_3_drizzle() {
    adopt_and_serve(DRIZZLE_13).await;
}
