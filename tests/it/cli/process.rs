//! The running process: SIGTERM and SIGINT during start-up stop it cleanly, and `healthcheck`
//! asks a running server.

use super::*;

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
