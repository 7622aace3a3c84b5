//! Scale-out (issue 17): two auth instances on one database, as two processes behind a load
//! balancer would be. Each instance has its own platform (pool, memory) and they share only
//! PostgreSQL and the test's clock.

use crate::common::{Seen, TestApp};
use actix_web::test::{self, TestRequest};
use std::net::SocketAddr;
use switchboard::auth::rate_limit::{DatabaseStore, Decision, Rule};
use switchboard::db::build_pool;
use switchboard::platform::app::build_app;
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::platform::telemetry::RoleTag;
use switchboard::server::mount;

const DATABASE_LIMITS: [(&str, &str); 3] = [
    ("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true"),
    ("SWITCHBOARD__AUTH__RATE_LIMIT__STORAGE", "database"),
    ("SWITCHBOARD__AUTH__RATE_LIMIT__MAX", "20"),
];

/// A second platform on `app`'s database and clock, with a pool and memory of its own.
fn second_instance(app: &TestApp) -> Platform {
    let config = app.platform.config.clone();
    let pool = build_pool(&config.database);
    Platform::new(config, pool, app.clock.clone())
}

/// Sends every request at once, alternating between the two instances' auth apps.
async fn spread(platforms: [&Platform; 2], reqs: Vec<TestRequest>) -> Vec<Seen> {
    let mut apps = Vec::new();
    for platform in platforms {
        let mounted = mount(Role::Auth, platform).expect("auth mounts");
        let data = actix_web::web::Data::new(platform.clone());
        apps.push(
            test::init_service(build_app(data, RoleTag("auth"), move |cfg| mounted(cfg))).await,
        );
    }
    let calls = reqs.into_iter().enumerate().map(|(i, req)| {
        let app = &apps[i % 2];
        async move {
            let res = test::call_service(app, req.to_request()).await;
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = test::read_body(res).await.to_vec();
            Seen {
                status,
                headers,
                body,
            }
        }
    });
    futures_util::future::join_all(calls).await
}

fn from(ip: &str, path: &str) -> TestRequest {
    TestRequest::get()
        .uri(path)
        .peer_addr(SocketAddr::new(ip.parse().unwrap(), 40000))
}

#[actix_web::test]
async fn database_limits_let_exactly_max_through_across_two_instances() {
    let app = TestApp::with_env(&DATABASE_LIMITS);
    let other = second_instance(&app);
    let reqs = (0..60)
        .map(|_| from("203.0.113.7", "/api/auth/ok"))
        .collect();
    let seen = spread([&app.platform, &other], reqs).await;
    let passed = seen.iter().filter(|s| s.status == 200).count();
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.status == 429).collect();
    assert_eq!((passed, refused.len()), (20, 40), "exactly max pass");
    assert!(
        refused
            .iter()
            .all(|s| s.header("x-retry-after") == Some("10"))
    );
    let mut conn = app.db.conn();
    assert_eq!(
        crate::common::rows::text(
            &mut conn,
            "SELECT count FROM rate_limit WHERE key = '203.0.113.7|/ok'"
        )
        .as_deref(),
        Some("20")
    );

    // Sign-in's own rule (3 per 10 s) holds across both as well, and its window slides from the
    // last allowed request whichever instance allowed it.
    let reqs = (0..12)
        .map(|_| from("203.0.113.8", "/api/auth/sign-in/email"))
        .collect();
    let seen = spread([&app.platform, &other], reqs).await;
    assert_eq!(seen.iter().filter(|s| s.status != 429).count(), 3);
    app.clock.advance(chrono::Duration::milliseconds(9_500));
    let seen = spread(
        [&other, &app.platform],
        vec![from("203.0.113.8", "/api/auth/sign-in/email")],
    )
    .await;
    assert_eq!(seen[0].status, 429);
    assert_eq!(seen[0].header("x-retry-after"), Some("1"));
    app.clock.advance(chrono::Duration::milliseconds(500));
    let seen = spread(
        [&app.platform, &other],
        vec![from("203.0.113.8", "/api/auth/sign-in/email")],
    )
    .await;
    assert_ne!(seen[0].status, 429);
}

#[actix_web::test]
async fn the_database_store_runs_better_auths_algorithm() {
    let app = TestApp::new();
    let mut conn = app.db.conn();
    let rule = Rule::new(10, 3);
    let mut at = |key: &str, ms: i64| DatabaseStore::check(&mut conn, key, rule, ms).unwrap();
    for ms in [0, 5_000, 9_000] {
        assert_eq!(at("k", ms), Decision::Allowed);
    }
    let limited = |retry_after_secs| Decision::Limited { retry_after_secs };
    // Full: refused until 10 s after the last allowed request, rounded up; refusals do not
    // move the window.
    assert_eq!(at("k", 9_000), limited(10));
    assert_eq!(at("k", 12_000), limited(7));
    assert_eq!(at("k", 18_999), limited(1));
    for _ in 0..3 {
        assert_eq!(at("k", 19_000), Decision::Allowed);
    }
    assert_eq!(at("k", 19_000), limited(10));
    assert_eq!(at("other", 19_000), Decision::Allowed);

    // Pruning drops only rows idle past the cut-off.
    assert_eq!(DatabaseStore::prune(&mut conn, 19_000).unwrap(), 0);
    assert_eq!(DatabaseStore::prune(&mut conn, 19_001).unwrap(), 2);
}

#[actix_web::test]
async fn memory_limits_count_per_instance() {
    // What database storage fixes: with memory storage each instance counts alone.
    let app = TestApp::with_env(&[DATABASE_LIMITS[0], DATABASE_LIMITS[2]]);
    let other = second_instance(&app);
    let reqs = (0..60)
        .map(|_| from("203.0.113.7", "/api/auth/ok"))
        .collect();
    let seen = spread([&app.platform, &other], reqs).await;
    assert_eq!(seen.iter().filter(|s| s.status == 200).count(), 40);
}

/// An auth app of its own over `platform`, kept for the whole test (its memory is the point).
struct Instance {
    platform: Platform,
    mounted: switchboard::server::Mount,
}

impl Instance {
    fn new(platform: Platform) -> Self {
        let mounted = mount(Role::Auth, &platform).expect("auth mounts");
        Self { platform, mounted }
    }

    async fn call(&self, req: TestRequest) -> Seen {
        let mounted = self.mounted.clone();
        let data = actix_web::web::Data::new(self.platform.clone());
        let app =
            test::init_service(build_app(data, RoleTag("auth"), move |cfg| mounted(cfg))).await;
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = test::read_body(res).await.to_vec();
        Seen {
            status,
            headers,
            body,
        }
    }
}

/// Waits until `n` listener connections on the test database are listening (bounded: 10 s).
pub(crate) async fn listeners_ready(app: &TestApp, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sql = "pg_stat_activity WHERE datname = current_database() \
               AND application_name = 'switchboard-listen' AND state = 'idle' \
               AND query IN ('LISTEN \"switchboard_keys\"', 'SELECT 1')";
    let mut conn = app.db.conn();
    while crate::common::rows::count(&mut conn, sql) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} listeners not ready after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Asks until `check` holds (a notice travels through PostgreSQL on real time, not the test's
/// clock, which stays put); fails after 5 s.
async fn within_seconds<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn a_sign_out_through_one_instance_empties_get_session_on_the_other_at_once() {
    use crate::common::auth::{cookie_header, get_with, post_with};
    let mut a = TestApp::new();
    let b = Instance::new(second_instance(&a));
    // A's app is mounted by its first request.
    let cookie = cookie_header(&a.sign_up("ann@example.com").await);
    listeners_ready(&a, 2).await;

    // B reads the session, and so remembers it for the TTL (1 s of the test's clock, which
    // does not move in this test).
    let seen = b.call(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(seen.json()["user"]["email"], "ann@example.com");

    let out = a
        .auth(post_with(
            "/api/auth/sign-out",
            &cookie,
            serde_json::json!({}),
        ))
        .await;
    assert_eq!(out.status, 200);
    within_seconds("B sees the sign-out", || async {
        b.call(get_with("/api/auth/get-session", &cookie))
            .await
            .json()
            .is_null()
    })
    .await;

    // A user update through A shows on B too.
    let cookie = cookie_header(
        &a.sign_in("ann@example.com", crate::common::auth::PASSWORD)
            .await,
    );
    let seen = b.call(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(seen.json()["user"]["name"], "Alice");
    let updated = a
        .auth(post_with(
            "/api/auth/update-user",
            &cookie,
            serde_json::json!({"name": "Ann B"}),
        ))
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.json());
    within_seconds("B sees the new name", || async {
        b.call(get_with("/api/auth/get-session", &cookie))
            .await
            .json()["user"]["name"]
            == "Ann B"
    })
    .await;
}

#[actix_web::test]
async fn a_key_rotation_elsewhere_is_loaded_by_every_instance_at_once() {
    use switchboard::auth::jwt::keys::{self, KeyPolicy};
    use switchboard::auth::jwt::sealed::KeySealer;
    let app = TestApp::new();
    let (a, b) = (
        Instance::new(app.platform.clone()),
        Instance::new(second_instance(&app)),
    );
    let kids = |seen: Seen| -> Vec<String> {
        seen.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    };
    let before = kids(a.call(TestRequest::get().uri("/api/auth/jwks")).await);
    assert_eq!(
        kids(b.call(TestRequest::get().uri("/api/auth/jwks")).await),
        before
    );
    listeners_ready(&app, 2).await;

    // `switchboard keys rotate --now`, from a third process; the clock does not move, so
    // neither instance's reload interval (30 s) runs out.
    let config = &app.platform.config;
    let sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap();
    let policy = KeyPolicy::from_config(&config.auth.jwt);
    let rotated =
        keys::rotate(&mut app.db.conn(), &sealer, &policy, app.clock_now(), true).unwrap();
    for (name, instance) in [("A", &a), ("B", &b)] {
        within_seconds(&format!("{name} serves the new key"), || async {
            kids(
                instance
                    .call(TestRequest::get().uri("/api/auth/jwks"))
                    .await,
            )
            .contains(&rotated.kid)
        })
        .await;
    }
}

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

/// A dropped LISTEN connection: the listener reconnects (with backoff) and clears the cache,
/// since it may have missed notices meanwhile.
#[actix_web::test]
async fn a_listener_that_reconnects_clears_the_session_cache() {
    use crate::common::auth::{cookie_header, get_with};
    use crate::common::rows::exec;
    let mut a = TestApp::new();
    let b = Instance::new(second_instance(&a));
    let cookie = cookie_header(&a.sign_up("ann@example.com").await);
    listeners_ready(&a, 2).await;
    let seen = b.call(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(seen.json()["user"]["email"], "ann@example.com");

    // Changed behind every process's back (no notice), then every listener is cut off.
    let mut conn = a.db.conn();
    exec(&mut conn, "DELETE FROM session");
    exec(
        &mut conn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'switchboard-listen'",
    );
    // B's cache alone would keep the session: the test's clock does not move.
    within_seconds("B reconnects and forgets", || async {
        b.call(get_with("/api/auth/get-session", &cookie))
            .await
            .json()
            .is_null()
    })
    .await;
    listeners_ready(&a, 2).await;
}
