//! Mounts the compiled-in roles, one listener each, and runs them until SIGTERM/SIGINT. The only
//! module that names both roles.

use crate::db;
use crate::platform::app::build_app;
use crate::platform::clock::SystemClock;
use crate::platform::config::Config;
use crate::platform::role::Role;
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
        #[allow(unreachable_patterns)]
        other => anyhow::bail!("role `{other}` is not compiled into this binary"),
    }
}

/// Creates the database (development) and applies migrations when configured to.
pub async fn prepare_database(config: &Config) -> anyhow::Result<()> {
    let db = config.database.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        if db.create_if_missing
            && db::migrate::create_database_if_missing(db.url.expose())
                .map_err(|e| anyhow::anyhow!("creating the database: {e}"))?
        {
            tracing::info!("created the database named in DATABASE_URL");
        }
        if db.migrate_on_start {
            let applied = migrate(&db)?;
            tracing::info!(count = applied.len(), "migrations applied");
        }
        Ok(())
    })
    .await?
}

/// Applies pending migrations over a connection of its own.
pub fn migrate(db: &crate::platform::config::DatabaseConfig) -> anyhow::Result<Vec<String>> {
    use diesel::Connection;
    let mut conn =
        diesel::PgConnection::establish(db.url.expose()).context("connecting to the database")?;
    db::migrate::run_pending(&mut conn).map_err(|e| anyhow::anyhow!("migrating: {e}"))
}

/// Serves `roles` until a shutdown signal, then drains in-flight requests.
pub async fn serve(config: Arc<Config>, roles: Vec<Role>) -> anyhow::Result<()> {
    prepare_database(&config).await?;
    let pool = db::build_pool(&config.database);
    let platform = Platform::new(config.clone(), pool, Arc::new(SystemClock));

    let mut servers = Vec::new();
    for role in roles {
        #[cfg(feature = "auth")]
        if matches!(role, Role::Auth) {
            crate::auth::jwt::KeyStore::new(&platform)?
                .check_readable()
                .await?;
        }
        let mount = mount(role, &platform)?;
        let listen = match role {
            Role::Auth => &config.server.auth_listen,
            Role::Connectors => &config.server.connectors_listen,
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
        let server = server
            .bind(listen.as_str())
            .with_context(|| format!("binding the {role} listener to {listen}"))?
            .run();
        tracing::info!(role = role.as_str(), %listen, "listening");
        servers.push(server);
    }

    let handles: Vec<_> = servers.iter().map(|s| s.handle()).collect();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        for handle in handles {
            handle.stop(true).await;
        }
    });
    for result in futures_util::future::join_all(servers).await {
        result?;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
