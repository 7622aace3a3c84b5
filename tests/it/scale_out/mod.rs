//! The multi-process harness (issue 17): real `switchboard serve` processes of the built binary,
//! two per role, on a PostgreSQL cluster of the test's own (`initdb` + `pg_ctl` into a temporary
//! directory, on a free port), behind HAProxy on loopback with `/readyz` health checks. One test
//! walks through every multi-process guarantee in turn, because starting the cluster, four
//! processes and the proxy is the expensive part:
//!
//! 1. sign-in rate limits are exact across both auth processes (database storage);
//! 2. a sign-out through one auth process is seen by the other's `get-session` at once;
//! 3. a key rotation (and revocation) made elsewhere: tokens minted through one auth process
//!    verify on both connectors processes at once, and the revoked key's tokens stop verifying;
//! 4. a webhook accepted by one connectors process (which runs no job workers) has its job run
//!    by the other (the only process with workers; the event ends up routed);
//! 5. a rolling restart of each role under load, with zero failed requests;
//! 6. PostgreSQL restarted under load: `/readyz` says 503 while it is down, every process
//!    recovers without a restart, and every webhook that got a 200 is in the table.
//!
//! Needs `haproxy` (Debian's 2.6; `.ci/run` installs it) and PostgreSQL's `initdb`/`pg_ctl`.
//! Every child (processes, proxy, cluster) is stopped by a guard, also when the test panics.
//!
//! The harness (cluster, processes, proxy, load) is here; the walk-through is `walkthrough`.

mod walkthrough;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LINEAR_SECRET: &str = "scale-out-linear-webhook-secret";
const ORIGIN: &str = crate::common::auth::ORIGIN;
const PASSWORD: &str = crate::common::auth::PASSWORD;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 25 ms until it holds; panics with `what` after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs a command to completion; panics with its output when it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command run as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_postgres(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL cluster of the test's own; stopped and deleted when dropped.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-scale-out-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // initdb and the server run as postgres: the directory must be theirs.
        let _ = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status();
        let cluster = Self {
            dir,
            port: free_port(),
        };
        run(as_postgres("initdb")
            .args(["-D", cluster.data().to_str().unwrap()])
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null()));
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        run(as_postgres("pg_ctl")
            .args(["-D", self.data().to_str().unwrap(), "-w", "-t", "60"])
            .args(["-l", self.dir.join("postgres.log").to_str().unwrap()])
            .args(["-o", &options, "start"])
            .stdout(Stdio::null()));
    }

    fn pg_ctl_stop(&self, mode: &str) {
        run(as_postgres("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-w",
                "-m",
                mode,
                "stop",
            ])
            .stdout(Stdio::null()));
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Auth,
    Connectors,
}

/// One `switchboard serve` process, restartable on the same port.
struct Server {
    kind: Kind,
    port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Guard>,
}

impl Server {
    fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn base(&self) -> String {
        format!("http://{}", self.listen())
    }

    fn spawn(&mut self) {
        let (role, variable) = match self.kind {
            Kind::Auth => ("auth", "AUTH_LISTEN"),
            Kind::Connectors => ("connectors", "CONNECTORS_LISTEN"),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.args(["serve", "--role", role])
            .env_clear()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env(variable, self.listen())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(Guard(cmd.spawn().unwrap()));
    }

    /// SIGTERM, then waits for a clean exit (the drain delay and the in-flight requests).
    fn terminate(&mut self) {
        let mut guard = self.child.take().expect("running");
        run(Command::new("kill").args(["-TERM", &guard.0.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = guard.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "clean exit: see {:?}", self.log);
    }

    async fn ready(&self, client: &reqwest::Client) -> Option<u16> {
        let res = client
            .get(format!("{}/readyz", self.base()))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        Some(res.status().as_u16())
    }
}

/// HAProxy in front of both roles: round robin, `/readyz` checked every 200 ms, two failed
/// checks take a server out (within the processes' 2 s drain delay) and two good ones bring it
/// back; a slow check (a debug build on a loaded machine) is not a failed one. A request on a pooled connection
/// the server closed meanwhile is retried (`retry-on`), which is safe here: every endpoint under
/// load is idempotent or deduplicated (webhooks by delivery id).
struct Proxy {
    auth_port: u16,
    connectors_port: u16,
    stats_port: u16,
    _child: Guard,
}

impl Proxy {
    fn start(dir: &Path, auth: &[&Server], connectors: &[&Server]) -> Self {
        let (auth_port, connectors_port, stats_port) = (free_port(), free_port(), free_port());
        let servers = |name: &str, list: &[&Server]| -> String {
            list.iter()
                .enumerate()
                .map(|(i, s)| format!("    server {name}{} {}\n", i + 1, s.listen()))
                .collect()
        };
        let cfg = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n\
             \x20   timeout check 3s\n\
             \x20   timeout server 30s\n    retries 3\n    option redispatch 1\n\
             \x20   retry-on conn-failure empty-response response-timeout\n\
             frontend auth\n    bind 127.0.0.1:{auth_port}\n    default_backend auth\n\
             frontend connectors\n    bind 127.0.0.1:{connectors_port}\n\
             \x20   default_backend connectors\n\
             frontend stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n\
             \x20   stats uri /stats\n\
             backend auth\n    balance roundrobin\n    option httpchk GET /readyz\n\
             \x20   default-server check inter 200ms fall 2 rise 2\n{}\
             backend connectors\n    balance roundrobin\n    option httpchk GET /readyz\n\
             \x20   default-server check inter 200ms fall 2 rise 2\n{}",
            servers("a", auth),
            servers("c", connectors),
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("haproxy: {e} (apt-get install -y haproxy; .ci/run installs it)")
            });
        Self {
            auth_port,
            connectors_port,
            stats_port,
            _child: Guard(child),
        }
    }

    fn auth(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.auth_port)
    }

    fn connectors(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.connectors_port)
    }

    /// How many servers of `backend` HAProxy has in rotation (`UP`).
    async fn up(&self, client: &reqwest::Client, backend: &str) -> usize {
        let Ok(res) = client
            .get(format!("http://127.0.0.1:{}/stats;csv", self.stats_port))
            .send()
            .await
        else {
            return 0;
        };
        let csv = res.text().await.unwrap_or_default();
        csv.lines()
            .filter(|l| l.starts_with(&format!("{backend},")))
            .filter(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                cols.get(1)
                    .is_some_and(|s| *s != "BACKEND" && *s != "FRONTEND")
                    && cols.get(17) == Some(&"UP")
            })
            .count()
    }
}

/// A Linear delivery, signed, stamped now (the processes use the real clock).
fn linear_webhook(delivery: &str) -> (Vec<u8>, String, String) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let body = serde_json::to_vec(&json!({
        "action": "update", "type": "Issue", "organizationId": "scale-out-org",
        "createdAt": "2026-11-27T10:00:00.000Z", "data": {"id": "issue-1"},
        "url": "https://linear.app/acme/issue/ACME-1", "webhookId": "wh-1",
        "webhookTimestamp": now_ms,
    }))
    .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, LINEAR_SECRET.as_bytes());
    let sig = hex::encode(ring::hmac::sign(&key, &body).as_ref());
    (body, sig, delivery.to_owned())
}

async fn post_webhook(client: &reqwest::Client, url: &str, delivery: &str) -> Option<u16> {
    let (body, sig, delivery) = linear_webhook(delivery);
    let res = client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("linear-signature", sig)
        .header("linear-delivery", delivery)
        .header("linear-event", "Issue")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    Some(res.status().as_u16())
}

/// Rows of a one-column query on the harness's database.
fn strings(url: &str, sql: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query(sql)
        .load::<Row>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| r.v)
        .collect()
}

/// What a load loop saw: requests answered as expected, and everything else (with a sample).
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    sample: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, good: bool, what: impl FnOnce() -> String) {
        if good {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut sample = self.sample.lock().unwrap();
            if sample.len() < 10 {
                sample.push(what());
            }
        }
    }
}

/// Keeps `get-session` (auth) and `/api/me` (connectors) busy through the proxy until `stop`,
/// four requests at a time, counting anything but the expected 200.
fn load(
    client: &reqwest::Client,
    proxy: &Proxy,
    cookie: &str,
    bearer: &str,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (client, stop, tally) = (client.clone(), stop.clone(), tally.clone());
        let (session_url, me_url) = (
            proxy.auth("/api/auth/get-session"),
            proxy.connectors("/api/me"),
        );
        let (cookie, bearer) = (cookie.to_owned(), bearer.to_owned());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = if i % 2 == 0 {
                    client.get(&session_url).header("cookie", &cookie)
                } else {
                    client.get(&me_url).bearer_auth(&bearer)
                };
                let url = if i % 2 == 0 { &session_url } else { &me_url };
                match req.timeout(Duration::from_secs(10)).send().await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let body: Value = res.json().await.unwrap_or(Value::Null);
                        let good = status == 200 && !body.is_null();
                        tally.record(good, || format!("{url}: {status} {body}"));
                    }
                    Err(e) => tally.record(false, || format!("{url}: {e}")),
                }
            }
        }));
    }
    tasks
}

/// The session cookie a sign-up or sign-in set.
fn cookie_of(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}
