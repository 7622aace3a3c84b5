//! Mounts the compiled-in roles, one listener each, and runs them until SIGTERM/SIGINT. The only
//! module that names both roles.

use crate::db;
use crate::platform::app::build_app;
use crate::platform::clock::SystemClock;
use crate::platform::config::Config;
use crate::platform::role::Role;
use crate::platform::shutdown::Signals;
use crate::platform::state::Platform;
use crate::platform::telemetry::RoleTag;
use actix_web::{HttpServer, web};
use anyhow::Context;
use std::sync::Arc;

/// A role's routes and state, ready to add to every worker's app.
pub type Mount = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Builds a role's state and returns what mounts it.
pub fn mount(role: Role, platform: &Platform) -> anyhow::Result<Mount> {
    match role {
        #[cfg(feature = "auth")]
        Role::Auth => {
            let state = web::Data::new(crate::auth::AuthState::new(platform)?);
            Ok(Arc::new(move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone());
                crate::auth::configure(cfg);
            }))
        }
        #[cfg(feature = "connectors")]
        Role::Connectors => {
            let state = web::Data::new(crate::connectors::ConnectorsState::new(platform)?);
            Ok(Arc::new(move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone());
                cfg.app_data(state.verifier());
                crate::connectors::configure(cfg);
            }))
        }
        #[cfg_attr(
            all(feature = "auth", feature = "connectors"),
            expect(unreachable_patterns, reason = "every role is compiled in")
        )]
        other => anyhow::bail!("role `{other}` is not compiled into this binary"),
    }
}

/// Creates the database (development) and applies migrations when configured to.
pub async fn prepare_database(config: &Config) -> anyhow::Result<()> {
    let db = config.database.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let applied = db::migrate::prepare(&db, db.migrate_on_start, || {
            tracing::info!("created the database named in DATABASE_URL");
        })?;
        if db.migrate_on_start {
            tracing::info!(count = applied.len(), "migrations applied");
        }
        Ok(())
    })
    .await?
}

/// Serves `roles` until a shutdown signal, then drains in-flight requests. The signal handlers
/// are installed before anything slow, so a signal during start-up stops the process at once.
pub async fn serve(config: Arc<Config>, roles: Vec<Role>) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("installing the SIGTERM/SIGINT handlers")?;
    let (servers, platform) = tokio::select! {
        started = start(&config, roles) => started?,
        signal = signals.recv() => {
            tracing::info!(signal, "stopped during start-up, before serving");
            return Ok(());
        }
    };

    let handles: Vec<_> = servers.iter().map(|s| s.handle()).collect();
    let (draining, delay) = (platform.draining.clone(), config.server.drain_delay_secs);
    tokio::spawn(async move {
        let signal = signals.recv().await;
        // Not ready from now on; keep serving while the load balancer notices (a second signal
        // cuts the wait short).
        draining.store(true, std::sync::atomic::Ordering::Release);
        if delay > 0 {
            tracing::info!(
                signal,
                delay_secs = delay,
                "shutting down: /readyz says 503, still serving while load balancers notice"
            );
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(delay)) => {}
                again = signals.recv() => tracing::info!(signal = again, "second signal: not waiting out the drain delay"),
            }
        }
        tracing::info!(signal, "shutting down: finishing in-flight requests");
        for handle in handles {
            handle.stop(true).await;
        }
    });
    for result in futures_util::future::join_all(servers).await {
        result?;
    }
    platform.on_shutdown.run().await;
    tracing::info!("shutting down: finishing or releasing running jobs");
    platform.jobs.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Everything before serving: the database, each role's state, the listeners.
async fn start(
    config: &Arc<Config>,
    roles: Vec<Role>,
) -> anyhow::Result<(Vec<actix_web::dev::Server>, Platform)> {
    prepare_database(config).await?;
    let pool = db::build_pool(&config.database);
    let platform = Platform::new(config.clone(), pool, Arc::new(SystemClock));

    let mut servers = Vec::new();
    for role in roles {
        let mount = mount(role, &platform)?;
        let (listen, variable) = match role {
            Role::Auth => (&config.server.auth_listen, "AUTH_LISTEN"),
            Role::Connectors => (&config.server.connectors_listen, "CONNECTORS_LISTEN"),
        };
        let data = web::Data::new(platform.clone());
        let tag = RoleTag(role.as_str());
        let mut server = HttpServer::new(move || {
            let mount = mount.clone();
            build_app(data.clone(), tag, move |cfg| mount(cfg))
        })
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout_secs);
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        let server = server.bind(listen.as_str()).map_err(|e| {
            anyhow::anyhow!(
                "the {role} role cannot listen on {listen} ({variable}): {e}; stop whatever \
                     holds that port or set {variable} to a free address:port"
            )
        })?;
        // Keys that do not decrypt refuse the auth role before it answers anything; checked after
        // the bind, so that a port in use is reported as such before the database is asked.
        #[cfg(feature = "auth")]
        if matches!(role, Role::Auth) {
            crate::auth::jwt::KeyStore::new(&platform)?
                .check_readable()
                .await?;
        }
        let server = server.run();
        tracing::info!(role = role.as_str(), %listen, "listening");
        servers.push(server);
    }
    Ok((servers, platform))
}
