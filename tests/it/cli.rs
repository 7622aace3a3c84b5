//! The binary itself: `check-config` refuses a bad production config naming every problem.

use std::process::Command;

fn switchboard(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run switchboard")
}

#[test]
fn production_with_a_short_secret_equal_to_jwt_secret_exits_non_zero_naming_both() {
    let out = switchboard(
        &[
            ("APP_ENV", "production"),
            ("BETTER_AUTH_URL", "https://auth.example.com"),
            ("BETTER_AUTH_SECRET", "short-secret"),
            ("JWT_SECRET", "short-secret"),
            ("ENCRYPTION_KEY", "0123456789abcdef0123456789ABCDEF"),
            ("CONNECTORS_URL", "https://connectors.example.com"),
        ],
        &["check-config", "--role", "all"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BETTER_AUTH_SECRET must be at least 32 characters"),
        "{stderr}"
    );
    assert!(
        stderr.contains("JWT_SECRET must differ from BETTER_AUTH_SECRET"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short-secret"),
        "the secret itself was printed: {stderr}"
    );
}

#[test]
fn check_config_passes_for_the_test_environment() {
    let out = switchboard(&[("APP_ENV", "test")], &["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn an_unknown_role_is_refused() {
    let out = switchboard(&[("APP_ENV", "test")], &["serve", "--role", "billing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'billing'"));
}

#[cfg(not(feature = "auth"))]
#[test]
fn a_role_not_compiled_in_is_refused() {
    let out = switchboard(&[("APP_ENV", "test")], &["check-config", "--role", "auth"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not compiled into this binary"));
}

#[cfg(not(feature = "connectors"))]
#[test]
fn a_role_not_compiled_in_is_refused() {
    let out = switchboard(
        &[("APP_ENV", "test")],
        &["check-config", "--role", "connectors"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not compiled into this binary"));
}
