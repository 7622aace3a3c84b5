//! `LiveServer`: a role served by a real `HttpServer` on 127.0.0.1:0, for tests that need a real
//! HTTP peer (the connectors role fetching the auth role's JWKS). Self-contained: it uses only
//! the crate's public app builder and `server::mount`, not the rest of this harness.

use super::app::test_config;
use super::db::TestDb;
use actix_web::dev::ServerHandle;
use actix_web::{HttpServer, web};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard::db::build_pool;
use switchboard::platform::app::build_app;
use switchboard::platform::clock::ManualClock;
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::platform::telemetry::RoleTag;
use switchboard::server::mount;

pub struct LiveServer {
    pub addr: SocketAddr,
    pub platform: Platform,
    pub clock: Arc<ManualClock>,
    handle: ServerHandle,
    _db: Option<TestDb>,
}

impl LiveServer {
    /// Serves `role` over a fresh `TestDb`, `config/test.toml` + `env`, and a clock the test moves.
    pub async fn start(role: Role, env: &[(&str, &str)]) -> Self {
        let db = TestDb::new();
        let mut all: Vec<(&str, &str)> = vec![("DATABASE_URL", db.url())];
        all.extend_from_slice(env);
        let config = test_config(&all);
        let clock = Arc::new(ManualClock::starting_now());
        let pool = build_pool(&config.database);
        let platform = Platform::new(Arc::new(config), pool, clock.clone());
        Self::serve(role, platform, clock, Some(db)).await
    }

    /// Serves `role` with the given platform (its pool, config and clock).
    pub async fn serve(
        role: Role,
        platform: Platform,
        clock: Arc<ManualClock>,
        db: Option<TestDb>,
    ) -> Self {
        let mounted = mount(role, &platform).expect("role mounts");
        let data = web::Data::new(platform.clone());
        let server = HttpServer::new(move || {
            let mounted = mounted.clone();
            build_app(data.clone(), RoleTag(role.as_str()), move |cfg| {
                mounted(cfg)
            })
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            addr,
            platform,
            clock,
            handle,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening; connections to the address are refused afterwards.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}
