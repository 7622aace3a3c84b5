//! Configuration at start-up: `check-config` and `serve` name every problem at once (bad
//! secrets, variables, `RUST_LOG`, a port in use, a database that cannot be reached), find the
//! config folder from anywhere, and know what a connectors-only process needs.

use super::*;

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

#[test]
fn the_config_folder_does_not_depend_on_the_working_directory() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let out = run_in(
        &src,
        &[("APP_ENV", "test"), ("RUST_LOG", "info")],
        &["check-config"],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // Which folder and which files were read is said at INFO.
    assert!(all.contains("config folder"), "{all}");
    assert!(all.contains("test.toml"), "{all}");

    // An explicit folder wins, and one that is not there is an error naming where it came from.
    let out = run_in(
        &src,
        &[("APP_ENV", "test")],
        &[
            "check-config",
            "--config-dir",
            "/no/such/switchboard/config",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("--config-dir"), "{}", text(&out));
    let out = run_in(
        &src,
        &[
            ("APP_ENV", "test"),
            ("SWITCHBOARD_CONFIG_DIR", "/no/such/switchboard/config"),
        ],
        &["check-config"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("SWITCHBOARD_CONFIG_DIR"),
        "{}",
        text(&out)
    );

    // A folder without <APP_ENV>.toml is used, and the missing file is named.
    let empty = TempDir::new("empty-config");
    let out = run_in(
        &src,
        &[("APP_ENV", "test"), ("RUST_LOG", "info")],
        &["check-config", "--config-dir", empty.0.to_str().unwrap()],
    );
    let all = text(&out);
    assert!(!out.status.success(), "test secrets live in test.toml");
    assert!(all.contains("test.toml not found"), "{all}");
    assert!(all.contains("BETTER_AUTH_SECRET is not set"), "{all}");
}

#[test]
fn help_mentions_app_env_the_config_files_and_the_ports() {
    let out = switchboard(&[], &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "APP_ENV",
        "default.toml",
        "SWITCHBOARD_CONFIG_DIR",
        "--config-dir",
        "AUTH_LISTEN",
        "CONNECTORS_LISTEN",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
}

#[test]
fn every_bad_variable_is_named_at_once() {
    let out = switchboard(
        &[
            ("APP_ENV", "test"),
            ("SWITCHBOARD__DATABASE__POOL_MAX_SIZE", "lots"),
            ("SWITCHBOARD__SERVER__WORKERS", "several"),
        ],
        &["check-config"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SWITCHBOARD__DATABASE__POOL_MAX_SIZE must be an integer"),
        "{stderr}"
    );
    assert!(
        stderr.contains("SWITCHBOARD__SERVER__WORKERS must be an integer"),
        "{stderr}"
    );
    assert!(!stderr.contains("lots"), "{stderr}");
}

#[test]
fn an_invalid_rust_log_is_an_error() {
    let out = switchboard(
        &[("APP_ENV", "test"), ("RUST_LOG", "info,switchboard=loud")],
        &["check-config"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
}

#[test]
fn a_port_in_use_names_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (role, variable) = one_role();
    let out = switchboard(
        &[("APP_ENV", "test"), (variable, &addr)],
        &["serve", "--role", role],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(variable), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn a_connection_failure_is_not_called_creating_the_database() {
    let out = switchboard(
        &[
            ("APP_ENV", "test"),
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/switchboard_nowhere",
            ),
            ("SWITCHBOARD__DATABASE__CREATE_IF_MISSING", "true"),
        ],
        &["migrate"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("connecting to the database (DATABASE_URL)"),
        "{stderr}"
    );
    assert!(!stderr.contains("creating the database"), "{stderr}");
}

/// A production environment for the connectors role alone, without BETTER_AUTH_URL.
const CONNECTORS_ONLY: &[(&str, &str)] = &[
    ("APP_ENV", "production"),
    ("ENCRYPTION_KEY", "0123456789abcdef0123456789ABCDEF"),
    ("CONNECTORS_URL", "https://connectors.example.com"),
    ("AUTH_JWKS_URL", "https://auth.example.com/api/auth/jwks"),
];

#[test]
fn a_connectors_only_process_needs_to_know_its_jwt_issuer_and_audience() {
    let out = switchboard(CONNECTORS_ONLY, &["check-config", "--role", "connectors"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for needle in [
        "BETTER_AUTH_URL",
        "connectors.jwt_issuer",
        "connectors.jwt_audience",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }

    let mut with_url = CONNECTORS_ONLY.to_vec();
    with_url.push(("BETTER_AUTH_URL", "https://auth.example.com"));
    let out = switchboard(&with_url, &["check-config", "--role", "connectors"]);
    assert!(out.status.success(), "{}", text(&out));

    let mut explicit = CONNECTORS_ONLY.to_vec();
    explicit.push((
        "SWITCHBOARD__CONNECTORS__JWT_ISSUER",
        "https://auth.example.com",
    ));
    explicit.push((
        "SWITCHBOARD__CONNECTORS__JWT_AUDIENCE",
        "https://auth.example.com",
    ));
    let out = switchboard(&explicit, &["check-config", "--role", "connectors"]);
    assert!(out.status.success(), "{}", text(&out));
}
