//! The `keys` commands, and what the configuration and `serve --role auth` refuse at start.

use super::*;

#[test]
fn the_keys_commands_rotate_and_list_without_showing_a_private_key() {
    let db = crate::common::TestDb::new();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("APP_ENV", "test")
            .env("DATABASE_URL", db.url())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let rotated = run(&["keys", "rotate", "--now"]);
    assert!(rotated.starts_with("new signing key "), "{rotated}");
    let kid = rotated.split_whitespace().nth(3).unwrap().to_owned();
    let again = run(&["keys", "rotate"]);
    let listed = run(&["keys", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("KID"), "{listed}");
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[2].starts_with(&kid) && lines[2].ends_with("signing"),
        "{listed}"
    );
    assert!(lines[1].ends_with("pending"), "{listed}");
    assert!(again.contains("signs 360 s after that"), "{again}");
    assert!(!listed.contains("\"v1:") && !listed.contains("\"d\""));

    // `keys revoke`: the pending key takes over; the last one goes only with --rotate.
    let pending = lines[1].split_whitespace().next().unwrap().to_owned();
    let revoked = run(&["keys", "revoke", &kid]);
    assert!(
        revoked.starts_with(&format!("revoked key {kid}")),
        "{revoked}"
    );
    let listed = run(&["keys", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&kid) && l.ends_with("revoked")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&pending) && l.ends_with("signing")),
        "{listed}"
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("DATABASE_URL", db.url())
        .args(["keys", "revoke", &pending])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("only key that can sign"), "{stderr}");
    let replaced = run(&["keys", "revoke", &pending, "--rotate"]);
    assert!(replaced.contains("new signing key"), "{replaced}");
}

#[test]
fn an_activation_delay_shorter_than_max_age_plus_reload_is_refused_with_every_problem() {
    let config = crate::common::test_config(&[
        ("SWITCHBOARD__AUTH__JWT__ACTIVATION_DELAY_SECS", "329"),
        ("SWITCHBOARD__AUTH__JWT__EXPIRES_IN_SECS", "5"),
    ]);
    let problems = config.validate(&[Role::Auth]).unwrap_err().problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("auth.jwt.activation_delay_secs is 329")
                && p.contains("at least 330")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("expires_in_secs must be at least 10")),
        "every problem at once: {problems:?}"
    );
    let config =
        crate::common::test_config(&[("SWITCHBOARD__AUTH__JWT__ACTIVATION_DELAY_SECS", "330")]);
    assert!(config.validate(&[Role::Auth]).is_ok());
}

/// Issue 11 point 7: keys sealed under another JWT_SECRET are found at start, not by a 500.
#[actix_web::test]
async fn keys_sealed_under_another_jwt_secret_are_found_at_start_and_listed_unreadable() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    store.check_readable().await.unwrap();
    let kid = kid_of(
        &store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap(),
    );

    let mut config = (*app.platform.config).clone();
    config.auth.jwt_secret =
        switchboard::platform::secret::Secret::new("a-new-jwt-secret-that-sealed-nothing-0123");
    let platform = switchboard::platform::state::Platform::new(
        Arc::new(config.clone()),
        app.platform.pool.clone(),
        app.clock.clone(),
    );
    let err = KeyStore::new(&platform)
        .unwrap()
        .check_readable()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&kid), "{err}");
    assert!(err.contains("JWT_SECRET"), "{err}");
    assert!(err.contains("keys rotate --now"), "{err}");

    let other_sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap();
    let list = keys::list(
        &mut app.db.conn(),
        &other_sealer,
        &policy(&app),
        app.clock.now(),
    )
    .unwrap();
    assert!(list[0].unreadable && !list[0].signing, "{list:?}");

    // The recovery the message names: rotate --now under the new secret, then start is fine.
    keys::rotate(
        &mut app.db.conn(),
        &other_sealer,
        &policy(&app),
        app.clock.now(),
        true,
    )
    .unwrap();
    KeyStore::new(&platform)
        .unwrap()
        .check_readable()
        .await
        .unwrap();
}

/// Issue 11 point 7, end to end: `serve --role auth` refuses to start, and says how to recover.
#[test]
fn serve_refuses_the_auth_role_when_its_keys_do_not_decrypt() {
    let db = crate::common::TestDb::new();
    let command = |jwt_secret: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env_clear()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("APP_ENV", "test")
            .env("DATABASE_URL", db.url())
            .env("JWT_SECRET", jwt_secret)
            .env("AUTH_LISTEN", "127.0.0.1:0")
            .args(args);
        cmd
    };
    let old = "the-old-jwt-secret-that-sealed-the-keys-0123";
    let made = command(old, &["keys", "rotate", "--now"]).output().unwrap();
    assert!(made.status.success(), "{made:?}");

    let mut child = command(
        "a-new-jwt-secret-after-a-careless-deploy-99",
        &["serve", "--role", "auth"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with keys it cannot decrypt");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("cannot be decrypted with the configured JWT_SECRET"),
        "{stderr}"
    );
    assert!(stderr.contains("keys rotate --now"), "{stderr}");
    assert!(!stderr.contains(old), "never the secret: {stderr}");

    let listed = command(
        "a-new-jwt-secret-after-a-careless-deploy-99",
        &["keys", "list"],
    )
    .output()
    .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("unreadable"), "{listed}");
}

#[test]
fn the_signing_side_knows_the_verifiers_leeway() {
    assert_eq!(
        switchboard::auth::jwt::VERIFIER_LEEWAY_SECS,
        switchboard::trust::verifier::LEEWAY_SECS
    );
}
