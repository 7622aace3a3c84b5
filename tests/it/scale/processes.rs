//! Real processes of the built binary: a rolling restart's `/readyz`, and two auth processes
//! sharing limits and sign-outs.

use super::*;

/// A rolling restart: from SIGTERM on, `/readyz` answers 503 while the process still serves
/// (`/healthz` 200) for `server.drain_delay_secs`; then it stops cleanly. A real process of the
/// built binary, since signals and listeners are the point.
#[test]
fn sigterm_makes_readyz_503_while_the_listener_still_serves() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    use switchboard::platform::health::probe;
    let db = crate::common::TestDb::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (role, variable) = if cfg!(feature = "connectors") {
        ("connectors", "CONNECTORS_LISTEN")
    } else {
        ("auth", "AUTH_LISTEN")
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--role", role])
        .env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", db.url())
        .env(variable, &listen)
        .env("SWITCHBOARD__SERVER__DRAIN_DELAY_SECS", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let second = Duration::from_secs(1);
    let started = Instant::now();
    while probe(&listen, "/readyz", second).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let signalled = Instant::now();
    // Not ready at once (well inside the 3 s delay), while still answering.
    loop {
        match probe(&listen, "/readyz", second) {
            Err(e) if e.ends_with("answered 503") => break,
            other => assert!(
                signalled.elapsed() < Duration::from_secs(2),
                "still {other:?} 2 s after SIGTERM"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(probe(&listen, "/healthz", second), Ok(()));
    assert!(signalled.elapsed() < Duration::from_secs(3));
    // Then the process stops by itself, cleanly.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "left before the drain delay"
    );
    assert_eq!(status.code(), Some(0));
    assert!(
        probe(&listen, "/healthz", second).is_err(),
        "closed afterwards"
    );
}

/// A process of the built binary serving the auth role; killed when dropped.
struct Process {
    child: std::process::Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `serve --role auth` on `db` with `env`, and waits until `/readyz` says ready.
fn auth_process(db: &crate::common::TestDb, env: &[(&str, &str)]) -> Process {
    use std::time::{Duration, Instant};
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["serve", "--role", "auth"])
        .env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", db.url())
        .env("AUTH_LISTEN", &listen)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let process = Process {
        child: cmd.spawn().unwrap(),
        base: format!("http://{listen}"),
    };
    let started = Instant::now();
    while switchboard::platform::health::probe(&listen, "/readyz", Duration::from_secs(1)).is_err()
    {
        assert!(started.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    process
}

/// Two real auth processes on one database: sign-in limits hold across both, and a sign-out
/// through one empties the other's get-session although its cache would keep the session for
/// ten minutes.
#[actix_web::test]
async fn two_auth_processes_share_limits_and_see_each_others_sign_outs() {
    use crate::common::auth::{ORIGIN, PASSWORD};
    use serde_json::{Value, json};
    let db = crate::common::TestDb::new();
    let env = [
        ("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true"),
        ("SWITCHBOARD__AUTH__RATE_LIMIT__STORAGE", "database"),
        ("SWITCHBOARD__AUTH__SESSION__CACHE_TTL_MS", "600000"),
    ];
    let (one, two) = (auth_process(&db, &env), auth_process(&db, &env));
    let client = reqwest::Client::new();
    let post = |p: &Process, path: &str, cookie: Option<&str>, body: Value| {
        let mut req = client
            .post(format!("{}/api/auth{path}", p.base))
            .header("origin", ORIGIN)
            .json(&body);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send()
    };
    let session_on = |p: &Process, cookie: String| {
        client
            .get(format!("{}/api/auth/get-session", p.base))
            .header("cookie", cookie)
            .send()
    };

    let up = post(
        &one,
        "/sign-up/email",
        None,
        json!({"name": "Alice", "email": "alice@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(up.status(), 200);
    let cookie: String = up
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let seen: Value = session_on(&two, cookie.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["user"]["email"], "alice@example.com");

    let out = post(&one, "/sign-out", Some(&cookie), json!({}))
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    within_seconds("process two sees the sign-out", || async {
        session_on(&two, cookie.clone())
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
            .is_null()
    })
    .await;

    // Sign-in: 3 per 10 s per client, counted across both processes.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let p = if i % 2 == 0 { &one } else { &two };
        let res = post(
            p,
            "/sign-in/email",
            None,
            json!({"email": "alice@example.com", "password": "wrong-password"}),
        )
        .await
        .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s != 429).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(statuses[3..], [429, 429, 429]);
}
