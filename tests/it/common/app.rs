//! `TestApp`: the real roles, mounted in process with `actix_web::test`, over a `TestDb`, with a
//! clock the test moves by hand.

use super::db::TestDb;
use actix_web::test;
use actix_web::web;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use switchboard::db::build_pool;
use switchboard::platform::app::build_app;
use switchboard::platform::clock::ManualClock;
use switchboard::platform::config::Config;
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::platform::telemetry::RoleTag;
use switchboard::server::{Mount, mount};

/// The configuration tests start from: `config/test.toml` with the given environment on top.
pub fn test_config(env: &[(&str, &str)]) -> Config {
    let mut map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.entry("APP_ENV".into()).or_insert_with(|| "test".into());
    Config::load(&map, &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .expect("test config loads")
}

pub struct TestApp {
    pub db: TestDb,
    pub clock: Arc<ManualClock>,
    pub platform: Platform,
    mounts: HashMap<Role, Mount>,
}

/// What a client would see of a response.
#[derive(Debug)]
pub struct Seen {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    /// What a client sees of `res`: its status, headers and whole body.
    pub async fn of<B: actix_web::body::MessageBody>(
        res: actix_web::dev::ServiceResponse<B>,
    ) -> Self {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = test::read_body(res).await.to_vec();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_env(&[])
    }

    /// A test app whose configuration has `env` applied on top of `config/test.toml`. An app
    /// that mails through Resend (a stand-in) runs the mail outbox's workers, as production
    /// does, unless `env` says what `jobs.enabled` is.
    pub fn with_env(env: &[(&str, &str)]) -> Self {
        let db = TestDb::new();
        let mut all: Vec<(&str, &str)> = vec![("DATABASE_URL", db.url())];
        let mails = env.iter().any(|(k, _)| *k == "RESEND_API_KEY");
        let jobs_said = env.iter().any(|(k, _)| *k == "SWITCHBOARD__JOBS__ENABLED");
        if mails && !jobs_said {
            all.extend_from_slice(super::mail::OUTBOX_WORKERS);
        }
        all.extend_from_slice(env);
        let config = test_config(&all);
        Self::from_parts(db, config)
    }

    pub fn from_parts(db: TestDb, config: Config) -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let pool = build_pool(&config.database);
        let platform = Platform::new(Arc::new(config), pool, clock.clone());
        Self {
            db,
            clock,
            platform,
            mounts: HashMap::new(),
        }
    }

    /// The same database and clock under another configuration, as a restarted process would
    /// run: the roles mount anew (no state, no caches carried over).
    pub fn restart_with(&mut self, config: Config) {
        self.platform = Platform::new(
            Arc::new(config),
            self.platform.pool.clone(),
            self.clock.clone(),
        );
        self.mounts.clear();
    }

    fn mount_for(&mut self, role: Role) -> Mount {
        let platform = self.platform.clone();
        self.mounts
            .entry(role)
            .or_insert_with(|| mount(role, &platform).expect("role mounts"))
            .clone()
    }

    /// Sends `req` to the role's app, exactly as built in production.
    pub async fn call(&mut self, role: Role, req: test::TestRequest) -> Seen {
        let mount = self.mount_for(role);
        let data = web::Data::new(self.platform.clone());
        let app = test::init_service(build_app(data, RoleTag(role.as_str()), move |cfg| {
            mount(cfg)
        }))
        .await;
        Seen::of(test::call_service(&app, req.to_request()).await).await
    }

    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use switchboard::platform::clock::Clock;
        self.clock.now()
    }

    /// Sends every request to one app instance at once and waits for all of them.
    pub async fn call_concurrently(
        &mut self,
        role: Role,
        reqs: Vec<test::TestRequest>,
    ) -> Vec<Seen> {
        let mount = self.mount_for(role);
        let data = web::Data::new(self.platform.clone());
        let app = test::init_service(build_app(data, RoleTag(role.as_str()), move |cfg| {
            mount(cfg)
        }))
        .await;
        let calls = reqs.into_iter().map(|req| {
            let app = &app;
            async move { Seen::of(test::call_service(app, req.to_request()).await).await }
        });
        futures_util::future::join_all(calls).await
    }

    #[cfg(feature = "auth")]
    /// Runs every ready job of the auth role (the mail outbox) to its end, as a worker of a
    /// freshly started process on this database would; returns how many ran.
    pub async fn drain_jobs(&self) -> usize {
        let fresh = switchboard::auth::AuthState::new(&self.platform).expect("auth state builds");
        switchboard::jobs::Runner::new(
            self.platform.pool.clone(),
            self.platform.clock.clone(),
            self.platform.config.jobs.clone(),
            fresh.job_registry(),
        )
        .run_until_idle()
        .await
        .expect("jobs drain")
    }

    /// Waits (enqueues that follow an answer happen in the background) until `n` jobs of
    /// `kind` exist; fails after 10 s.
    pub async fn wait_for_jobs(&self, kind: &str, n: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let sql = format!("jobs WHERE kind = '{kind}'");
        let mut conn = self.db.conn();
        while super::rows::count(&mut conn, &sql) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} {kind} jobs after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub async fn get(&mut self, role: Role, path: &str) -> Seen {
        self.call(role, test::TestRequest::get().uri(path)).await
    }
}
