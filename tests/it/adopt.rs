//! `switchboard db adopt` on databases the real Better Auth made (`tests/adopt/seed.mjs`: its own
//! migrator, the Drizzle schema Better Auth's CLI generates pushed by drizzle-kit, custom model
//! names; better-auth 1.7.25 and 1.3.9), then switchboard serves the users Better Auth wrote: passwords, session cookies, JWTs,
//! a pending reset, a GitHub-linked account, a column of the app's own.

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

#[test]
fn dry_run_changes_nothing_and_the_rollback_restores_the_layout() {
    for layout in [DRIZZLE_17_CUSTOM, MIGRATOR_17] {
        let (db, _) = seeded(layout);
        let mut conn = db.conn();
        let (schema, data) = (schema_of(&mut conn), data_of(&mut conn));

        let dry = adopt::run(
            &mut conn,
            &Options {
                dry_run: true,
                ..options(layout)
            },
        )
        .unwrap();
        assert!(!dry.applied);
        assert!(dry.plan.steps.len() > 1);
        assert_eq!(schema_of(&mut conn), schema);
        assert_eq!(data_of(&mut conn), data);

        let rollback = adopt::run(
            &mut conn,
            &Options {
                print_rollback: true,
                ..options(layout)
            },
        )
        .unwrap()
        .rollback_sql();
        assert_eq!(schema_of(&mut conn), schema);

        adopt::run(&mut conn, &options(layout)).unwrap();
        assert_ne!(schema_of(&mut conn), schema);
        conn.batch_execute(&rollback).unwrap();
        assert_eq!(schema_of(&mut conn), schema);
        assert_eq!(data_of(&mut conn), data);
        // And it adopts again after the rollback.
        adopt::run(&mut conn, &options(layout)).unwrap();
    }
}

#[test]
fn a_failure_midway_leaves_the_database_as_it_was() {
    let (db, _) = seeded(DRIZZLE_17_CUSTOM);
    let mut conn = db.conn();
    // A schema without the unique token constraint, and a duplicate token: the renames and
    // conversions succeed, adding the constraint fails.
    conn.batch_execute(
        "ALTER TABLE session DROP CONSTRAINT session_token_unique;
         INSERT INTO session (id, expires_at, token, created_at, updated_at, user_id)
           SELECT 'dup' || id, expires_at, token, created_at, updated_at, user_id FROM session LIMIT 1;",
    )
    .unwrap();
    let (schema, data) = (schema_of(&mut conn), data_of(&mut conn));
    let err = adopt::run(&mut conn, &options(DRIZZLE_17_CUSTOM)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, AdoptError::Failed(_)), "{message}");
    assert!(message.contains("session_token_key"), "{message}");
    assert!(message.contains("nothing changed"), "{message}");
    assert_eq!(schema_of(&mut conn), schema);
    assert_eq!(data_of(&mut conn), data);
}

#[test]
fn refusals_say_what_was_found_and_what_to_do() {
    // Nothing of Better Auth's.
    let empty = TestDb::empty();
    let message = refused(adopt::run(&mut empty.conn(), &Options::default()));
    assert!(message.contains("no table `user`"), "{message}");

    // Already switchboard's.
    let migrated = TestDb::new();
    let message = refused(adopt::run(&mut migrated.conn(), &Options::default()));
    assert!(message.contains("run `switchboard migrate`"), "{message}");

    let (db, _) = seeded(DRIZZLE_17_CUSTOM);
    let mut conn = db.conn();
    // Renamed tables without --table-map: the lookalike is named.
    let message = refused(adopt::run(&mut conn, &options(MIGRATOR_17)));
    assert!(message.contains("--table-map user=users"), "{message}");

    // The old service is still writing: rows changed a moment ago.
    let message = refused(adopt::run(
        &mut conn,
        &Options {
            quiet_secs: 60,
            ..options(DRIZZLE_17_CUSTOM)
        },
    ));
    assert!(message.contains("still writing"), "{message}");

    // … or still connected.
    let other = db.conn();
    let message = refused(adopt::run(&mut conn, &options(DRIZZLE_17_CUSTOM)));
    assert!(
        message.contains("Stop the old auth service first"),
        "{message}"
    );
    drop(other);

    // A bad zone.
    let message = refused(adopt::run(
        &mut conn,
        &Options {
            source_zone: "Mars/Olympus".to_owned(),
            ..options(DRIZZLE_17_CUSTOM)
        },
    ));
    assert!(message.contains("Mars/Olympus"), "{message}");

    // A required column missing.
    conn.batch_execute("ALTER TABLE session DROP COLUMN token")
        .unwrap();
    let message = refused(adopt::run(&mut conn, &options(DRIZZLE_17_CUSTOM)));
    assert!(
        message.contains("table `session` has no column for Better Auth's required field `token`"),
        "{message}"
    );

    // Twice: the second is refused.
    conn.batch_execute("ALTER TABLE session ADD COLUMN token text")
        .unwrap();
    conn.batch_execute("UPDATE session SET token = id").unwrap();
    adopt::run(&mut conn, &options(DRIZZLE_17_CUSTOM)).unwrap();
    let message = refused(adopt::run(&mut conn, &options(DRIZZLE_17_CUSTOM)));
    assert!(message.contains("already here"), "{message}");
}

fn switchboard(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("DATABASE_URL", db.url())
        .args(args)
        .output()
        .expect("run switchboard")
}

#[test]
fn the_command_prints_the_plan_the_rollback_and_its_refusals() {
    let (db, _) = seeded(DRIZZLE_17_CUSTOM);
    let map = "--table-map=user=users,account=accounts";

    let out = switchboard(&db, &["db", "adopt", "--dry-run", map]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("user (as `users`): snake_case columns, timestamp without time zone"));
    assert!(stdout.contains("read as UTC (--source-zone)"), "{stdout}");
    assert!(stdout.contains("rename table users to user"), "{stdout}");
    // The rows were written a moment ago: the dry run warns, the apply refuses.
    assert!(
        stdout.contains("warning: the old service is still writing"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");

    let out = switchboard(&db, &["db", "adopt", map]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: the old service is still writing"),
        "{stderr}"
    );

    let out = switchboard(&db, &["db", "adopt", "--print-rollback", map]);
    assert!(out.status.success());
    let rollback = String::from_utf8_lossy(&out.stdout);
    assert!(rollback.starts_with("-- Restores"), "{rollback}");
    assert!(
        rollback.contains("ALTER TABLE \"user\" RENAME TO \"users\""),
        "{rollback}"
    );
    assert!(rollback.trim_end().ends_with("COMMIT;"));

    let out = switchboard(&db, &["db", "adopt", "--quiet-secs", "0", map]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("adopted: migration 20261125000001 recorded; next: `switchboard migrate`")
    );
    let out = switchboard(&db, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Prisma's layout for Better Auth's schema (camelCase, `timestamp(3)`, unique *indexes*, FKs
/// with ON UPDATE CASCADE), written here as `prisma migrate` writes it: Prisma itself is not
/// among the test's packages.
const PRISMA_DDL: &str = r#"
CREATE TABLE "user" ("id" TEXT NOT NULL, "name" TEXT NOT NULL, "email" TEXT NOT NULL,
  "emailVerified" BOOLEAN NOT NULL DEFAULT false, "image" TEXT,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
  CONSTRAINT "user_pkey" PRIMARY KEY ("id"));
CREATE TABLE "session" ("id" TEXT NOT NULL, "expiresAt" TIMESTAMP(3) NOT NULL, "token" TEXT NOT NULL,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
  "ipAddress" TEXT, "userAgent" TEXT, "userId" TEXT NOT NULL, CONSTRAINT "session_pkey" PRIMARY KEY ("id"));
CREATE TABLE "account" ("id" TEXT NOT NULL, "accountId" TEXT NOT NULL, "providerId" TEXT NOT NULL,
  "userId" TEXT NOT NULL, "accessToken" TEXT, "refreshToken" TEXT, "idToken" TEXT,
  "accessTokenExpiresAt" TIMESTAMP(3), "refreshTokenExpiresAt" TIMESTAMP(3), "scope" TEXT, "password" TEXT,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
  CONSTRAINT "account_pkey" PRIMARY KEY ("id"));
CREATE TABLE "verification" ("id" TEXT NOT NULL, "identifier" TEXT NOT NULL, "value" TEXT NOT NULL,
  "expiresAt" TIMESTAMP(3) NOT NULL, "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3), CONSTRAINT "verification_pkey" PRIMARY KEY ("id"));
CREATE INDEX "session_userId_idx" ON "session"("userId");
CREATE UNIQUE INDEX "session_token_key" ON "session"("token");
CREATE INDEX "account_userId_idx" ON "account"("userId");
CREATE INDEX "verification_identifier_idx" ON "verification"("identifier");
CREATE UNIQUE INDEX "user_email_key" ON "user"("email");
ALTER TABLE "session" ADD CONSTRAINT "session_userId_fkey" FOREIGN KEY ("userId") REFERENCES "user"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "account" ADD CONSTRAINT "account_userId_fkey" FOREIGN KEY ("userId") REFERENCES "user"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
INSERT INTO "user" VALUES ('u1', 'Ann', 'ann@example.com', true, NULL, '2026-11-01 10:00:00.123', '2026-11-01 10:00:00.123');
INSERT INTO "session" VALUES ('s1', '2026-12-01 10:00:00.5', 'tok1', '2026-11-01 10:00:00', '2026-11-01 10:00:00', NULL, NULL, 'u1');
INSERT INTO "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt") VALUES ('a1', 'u1', 'credential', 'u1', 'x:y', '2026-11-01 10:00:00', '2026-11-01 10:00:00');
INSERT INTO "verification" ("id", "identifier", "value", "expiresAt") VALUES ('v1', 'reset-password:abc', 'u1', '2026-11-01 11:00:00');
"#;

#[test]
fn a_prisma_layout_adopts_and_rolls_back() {
    let db = TestDb::empty();
    let mut conn = db.conn();
    conn.batch_execute(PRISMA_DDL).unwrap();
    let (schema, data) = (schema_of(&mut conn), data_of(&mut conn));
    let options = Options {
        quiet_secs: 0,
        source_zone: "Europe/Berlin".to_owned(),
        ..Options::default()
    };
    let rollback = adopt::run(
        &mut conn,
        &Options {
            print_rollback: true,
            ..options.clone()
        },
    )
    .unwrap()
    .rollback_sql();
    let outcome = adopt::run(&mut conn, &options).unwrap();
    let plan = outcome.plan.describe();
    assert!(plan.contains("unique index user_email_key becomes constraint user_email_key"));
    assert!(plan.contains("jwks: missing (the JWT plugin was off); created empty"));
    assert!(plan.contains("read as Europe/Berlin"), "{plan}");
    assert!(
        plan.contains("fill NULLs in verification.updated_at"),
        "{plan}"
    );
    // Local Berlin time (UTC+1 in November) is stored as the instant it was.
    let created: Option<String> = diesel::sql_query(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS line FROM \"user\"",
    )
    .get_result::<PlanCol>(&mut conn)
    .unwrap()
    .line;
    assert_eq!(created.as_deref(), Some("2026-11-01 09:00:00.123"));
    migrate::run_pending(&mut conn).unwrap();
    // Deleting a user deletes their accounts now (RESTRICT became CASCADE).
    conn.batch_execute("DELETE FROM \"user\" WHERE id = 'u1'")
        .unwrap();

    // Back to before (before `migrate`): the rollback file restores the layout.
    let db = TestDb::empty();
    let mut conn = db.conn();
    conn.batch_execute(PRISMA_DDL).unwrap();
    adopt::run(&mut conn, &options).unwrap();
    conn.batch_execute(&rollback).unwrap();
    assert_eq!(schema_of(&mut conn), schema);
    // The NULL the adoption filled stays filled; everything else is as it was.
    let mut after = data_of(&mut conn);
    let mut before = data.clone();
    after.retain(|l| !l.starts_with("verification "));
    before.retain(|l| !l.starts_with("verification "));
    assert_eq!(after, before);
}
