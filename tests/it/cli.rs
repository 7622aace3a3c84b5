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

/// A fresh empty folder under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("switchboard-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_clear().current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run switchboard")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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

/// The role this binary serves alone in a test, and the variable that sets its listener.
fn one_role() -> (&'static str, &'static str) {
    if cfg!(feature = "auth") {
        ("auth", "AUTH_LISTEN")
    } else {
        ("connectors", "CONNECTORS_LISTEN")
    }
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

/// The runtime stage of the Dockerfile: its WORKDIR and ENV.
fn image_layout() -> (String, Vec<(String, String)>) {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let joined = runtime.replace("\\\n", " ");
    let mut workdir = String::new();
    let mut env = Vec::new();
    for line in joined.lines().map(str::trim) {
        if let Some(dir) = line.strip_prefix("WORKDIR ") {
            workdir = dir.trim().to_owned();
        } else if let Some(pairs) = line.strip_prefix("ENV ") {
            for pair in pairs.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap();
                env.push((k.to_owned(), v.trim_matches('"').to_owned()));
            }
        }
    }
    assert!(
        runtime.contains("COPY --from=build /src/config ./config"),
        "the image no longer copies config/ into its WORKDIR"
    );
    (workdir, env)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_image_layout_reads_the_production_config_and_logs_json() {
    let (workdir, image_env) = image_layout();
    assert_eq!(workdir, "/app");
    let root = TempDir::new("image");
    let app = root.0.join("app");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        &app.join("config"),
    );
    // The image's environment, with its absolute paths moved under the stand-in root.
    let mut env: Vec<(String, String)> = image_env
        .into_iter()
        .map(|(k, v)| {
            let v = match v.strip_prefix("/app") {
                Some(rest) => format!("{}{rest}", app.display()),
                None => v,
            };
            (k, v)
        })
        .collect();
    assert!(env.iter().any(|(k, v)| k == "APP_ENV" && v == "production"));
    for (k, v) in [
        ("BETTER_AUTH_URL", "https://auth.example.com"),
        (
            "BETTER_AUTH_SECRET",
            "a-real-production-secret-of-40-characters",
        ),
        ("JWT_SECRET", "another-real-production-secret-40-chars!"),
        ("RESEND_API_KEY", "re_live_0123456789"),
        ("ENCRYPTION_KEY", "0123456789abcdef0123456789ABCDEF"),
        ("CONNECTORS_URL", "https://connectors.example.com"),
        ("AUTH_JWKS_URL", "https://auth.example.com/api/auth/jwks"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_in(&app, &env, &["check-config", "--role", "all"]);
    assert!(out.status.success(), "{}", text(&out));
    // A command's log lines go to stderr; its stdout is its result alone.
    let stdout = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration is valid for role(s) auth, connectors (APP_ENV=production)"
    );
    let logs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let read = logs
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("config folder"))
        })
        .unwrap_or_else(|| panic!("no JSON log line names the config folder:\n{stdout}"));
    assert_eq!(read["level"], "INFO");
    let files = read["files"].as_str().unwrap();
    assert!(files.contains("production.toml"), "{files}");
    assert!(
        !stdout.contains("\u{1b}["),
        "ANSI colour in production logs:\n{stdout}"
    );
}

/// Starts `serve --role auth` (through `sh` when `shell_prefix` is set) against a "database"
/// that accepts the connection and never answers, and returns once the process is stuck
/// there: start-up is under way and not finished.
fn start_stuck_on_the_database(
    shell_prefix: Option<&str>,
) -> (
    std::process::Child,
    std::net::TcpStream,
    std::net::TcpListener,
) {
    let db = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://postgres@{}/switchboard_silent",
        db.local_addr().unwrap()
    );
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let (role, variable) = one_role();
    let args = ["serve", "--role", role];
    let mut cmd = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                .arg(bin)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    cmd.env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", &url)
        .env("SWITCHBOARD__DATABASE__MIGRATE_ON_START", "true")
        .env(variable, "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let listener = db.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = tx.send(listener.accept().map(|(stream, _)| stream));
    });
    let stream = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("switchboard never reached the database")
        .unwrap();
    (child, stream, db)
}

/// Sends `signal` and waits (at most 10 s) for the process to exit.
fn signal_and_wait(
    mut child: std::process::Child,
    signal: &str,
) -> Result<std::process::Output, String> {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        (status, child)
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(()) => {
            let (status, _) = waiter.join().unwrap();
            let read = |r: Option<Box<dyn std::io::Read>>| {
                let mut s = Vec::new();
                if let Some(mut r) = r {
                    r.read_to_end(&mut s).unwrap();
                }
                s
            };
            Ok(std::process::Output {
                status: status.unwrap(),
                stdout: read(stdout.map(|s| Box::new(s) as Box<dyn std::io::Read>)),
                stderr: read(stderr.map(|s| Box::new(s) as Box<dyn std::io::Read>)),
            })
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            Err(format!("still running 10 s after SIG{signal}"))
        }
    }
}

#[test]
fn sigterm_during_start_up_stops_the_process_cleanly() {
    let (child, _stream, _db) = start_stuck_on_the_database(None);
    let out = signal_and_wait(child, "TERM").unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "not a clean stop (killed by the signal?): {}",
        text(&out)
    );
    assert!(
        text(&out).contains("stopped during start-up"),
        "{}",
        text(&out)
    );
}

#[test]
fn sigint_during_start_up_is_not_lost_when_the_parent_ignored_it() {
    // A shell starting us in the background hands SIGINT down ignored; the handler must be in
    // place before the slow part, or the signal is dropped until the listeners are up.
    let (child, _stream, _db) = start_stuck_on_the_database(Some("trap '' INT"));
    let out = signal_and_wait(child, "INT").unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn healthcheck_asks_the_running_server_and_exits_0_or_1() {
    use crate::common::http::LiveServer;
    use switchboard::platform::role::Role;
    let role = if cfg!(feature = "auth") {
        Role::Auth
    } else {
        Role::Connectors
    };
    let (variable, other) = match role {
        Role::Auth => ("AUTH_LISTEN", "CONNECTORS_LISTEN"),
        Role::Connectors => ("CONNECTORS_LISTEN", "AUTH_LISTEN"),
    };
    let server = LiveServer::start(role, &[]);
    // A wildcard listen address is asked on loopback, as in a container.
    let listen = format!("0.0.0.0:{}", server.addr.port());
    let env = [
        ("APP_ENV", "test"),
        (variable, listen.as_str()),
        (other, "127.0.0.1:1"),
    ];
    let role_arg = role.as_str();
    let out = switchboard(&env, &["healthcheck", "--role", role_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let out = switchboard(
        &env,
        &["healthcheck", "--role", role_arg, "--path", "/healthz"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = switchboard(
        &env,
        &["healthcheck", "--role", role_arg, "--path", "/no-such-path"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("404"), "{}", text(&out));
    drop(server);

    // Nothing listening: unhealthy, and the address is named.
    let out = switchboard(
        &[("APP_ENV", "test"), (variable, "127.0.0.1:1")],
        &["healthcheck", "--role", role_arg],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("127.0.0.1:1"), "{}", text(&out));
}

#[test]
fn the_builder_image_is_the_pinned_toolchain() {
    let toolchain =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rust-toolchain.toml"))
            .unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("FROM rust:{channel}-")),
        "the Dockerfile's builder is not rust:{channel}"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("\"healthcheck\""));
}
