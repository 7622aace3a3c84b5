//! The plan and its safety: dry run, rollback, a failure midway, refusals, the command's
//! output, and a Prisma layout.

use super::*;

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
