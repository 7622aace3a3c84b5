//! `LiveServer`: a role served exactly as production serves it — `HttpServer` on a real
//! 127.0.0.1 listener, over a `TestDb`, with the system clock — for clients outside the process.

use super::app::test_config;
use super::db::TestDb;
use actix_web::dev::ServerHandle;
use actix_web::{HttpServer, web};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use switchboard::db::build_pool;
use switchboard::platform::app::build_app;
use switchboard::platform::clock::SystemClock;
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::platform::telemetry::RoleTag;
use switchboard::server::mount;

/// A running role. Dropping it stops the server (in-flight requests are cut), then drops its
/// database.
pub struct LiveServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`: the role's own public URL, as its configuration has it.
    pub url: String,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    db: TestDb,
}

impl LiveServer {
    /// Serves `role` on a free port of 127.0.0.1. The listener is bound first, so the role's
    /// public URL (`BETTER_AUTH_URL` or `CONNECTORS_URL`) can name its real port; `env` is
    /// applied on top, as in `test_config`.
    pub fn start(role: Role, env: &[(&str, &str)]) -> Self {
        let db = TestDb::new();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let url = format!("http://{addr}");
        let url_key = match role {
            Role::Auth => "BETTER_AUTH_URL",
            Role::Connectors => "CONNECTORS_URL",
        };
        let mut all: Vec<(&str, &str)> = vec![("DATABASE_URL", db.url()), (url_key, &url)];
        // As `TestApp::with_env`: a server that mails through Resend runs the outbox's workers.
        if env.iter().any(|(k, _)| *k == "RESEND_API_KEY")
            && !env.iter().any(|(k, _)| *k == "SWITCHBOARD__JOBS__ENABLED")
        {
            all.extend_from_slice(super::mail::OUTBOX_WORKERS);
        }
        all.extend_from_slice(env);
        let config = Arc::new(test_config(&all));

        // The server gets a thread and an actix system of its own, so the test may block (on a
        // child process, say) without starving it, and the role's state is built inside a
        // runtime as it is in `serve`.
        let (tx, rx) = mpsc::channel::<Result<ServerHandle, String>>();
        let thread = std::thread::Builder::new()
            .name(format!("live-{role}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let pool = build_pool(&config.database);
                    let platform = Platform::new(config, pool, Arc::new(SystemClock));
                    let mount = match mount(role, &platform) {
                        Ok(mount) => mount,
                        Err(e) => {
                            let _ = tx.send(Err(format!("mounting the {role} role: {e:#}")));
                            return;
                        }
                    };
                    let data = web::Data::new(platform);
                    let tag = RoleTag(role.as_str());
                    let server = HttpServer::new(move || {
                        let mount = mount.clone();
                        build_app(data.clone(), tag, move |cfg| mount(cfg))
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener);
                    let server = match server {
                        Ok(server) => server.run(),
                        Err(e) => {
                            let _ = tx.send(Err(format!("listening on {addr}: {e}")));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(server.handle()));
                    if let Err(e) = server.await {
                        eprintln!("live {role} server stopped with an error: {e}");
                    }
                });
            })
            .expect("spawn the server thread");
        let handle = match rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(message)) => panic!("{message}"),
            Err(_) => panic!("the {role} server thread died before it started"),
        };
        Self {
            addr,
            url,
            handle,
            thread: Some(thread),
            db,
        }
    }

    pub fn db(&self) -> &TestDb {
        &self.db
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        // `stop` is async and this may run inside a test's runtime, where no other runtime may
        // be started: send it from a thread of its own.
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        })
        .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
