//! The connectors role: a resource server that trusts only JWTs verified against the auth role's
//! JWKS. It never names the auth module or reads auth-owned tables.

pub mod admin;
pub mod agents;
pub mod anthropic;
pub mod config;
mod connect;
mod error;
mod events;
mod handlers;
mod linear_agent;
pub mod mcp;
mod me;
mod models;
mod oauth;
mod pending;
mod providers;
mod refresh;
mod service;
mod store;
mod vault;
pub mod webhooks;

pub use error::ConnectorsError;
pub use models::ConnectionId;
pub use refresh::SweepReport;
pub use vault::Plain;

use crate::db::DbPool;
use crate::platform::clock::SharedClock;
use crate::platform::config::Config;
use crate::platform::openapi;
use crate::platform::state::Platform;
use crate::trust::{HttpJwksSource, Verifier};
use actix_web::{HttpResponse, web};
use anyhow::Context;
use std::sync::Arc;
use utoipa::OpenApi;

/// What the role's service functions share; no actix types, so they are testable alone.
pub(crate) struct Ctx {
    pub pool: DbPool,
    /// What job handlers use: the workers' own pool (`jobs.pool_max_size`) or `pool`.
    pub jobs_pool: DbPool,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    /// The one outbound client: no redirects, short timeouts.
    pub http: reqwest::Client,
    pub vault: vault::Vault,
    pub registry: providers::Registry,
    /// The MCP client (its own SSRF-guarded HTTP client, era and tool caches).
    pub mcp: mcp::McpClient,
    /// Writes MCP tool-call records in batches, off the response path.
    pub mcp_calls: mcp::Recorder,
    /// Wakes this process's job workers after a local enqueue committed.
    pub jobs_wake: Arc<tokio::sync::Notify>,
    /// The Anthropic Messages API client agent runs call.
    pub anthropic: anthropic::Client,
    /// Group commit for webhook intake: verified deliveries are stored in batches by
    /// `webhooks.intake_writers` threads with their own connections.
    pub intake: Arc<webhooks::writer::IntakeWriter>,
    /// Agent run events for this process's SSE streams (one poller for all).
    pub agent_events: agents::hub::EventHub,
    /// Cancel requests for the runs this process runs (one poller for all).
    pub agent_cancels: agents::hub::CancelWatch,
}

/// The connectors role's side of `LISTEN/NOTIFY`: a key rotation or revocation announced by an
/// auth process on the same database (`notify::KEYS_CHANNEL`) makes this process refetch the
/// JWKS at once instead of at the end of its cache TTL (up to 300 s), so a revoked key stops
/// verifying everywhere together. A (re)connect invalidates too, since a notice may have been
/// missed meanwhile; while the connection is down the TTL is the fallback. The thread ends once
/// the key source is gone.
fn listen_for_key_changes(
    platform: &Platform,
    keys: &Arc<HttpJwksSource>,
) -> Option<crate::platform::notify::Listener> {
    use crate::platform::notify;
    let runtime = tokio::runtime::Handle::try_current().ok();
    let keys = Arc::downgrade(keys);
    let mut connected_once = false;
    let handler = move |event: notify::Event| {
        let Some(keys) = keys.upgrade() else {
            return notify::Flow::Stop;
        };
        match event {
            // The first connect precedes any fetch: nothing to forget.
            notify::Event::Connected if !connected_once => connected_once = true,
            notify::Event::Connected => keys.invalidate(runtime.as_ref()),
            notify::Event::Notification { channel, payload } if channel == notify::KEYS_CHANNEL => {
                // `{"revoked":"<kid>"}` from `keys revoke`; empty for an added key.
                let revoked = serde_json::from_str::<serde_json::Value>(&payload)
                    .ok()
                    .and_then(|v| v.get("revoked")?.as_str().map(str::to_owned));
                tracing::debug!(
                    ?revoked,
                    "key change announced by the auth role; refetching the JWKS"
                );
                keys.invalidate_revoking(revoked.as_deref(), runtime.as_ref());
            }
            _ => {}
        }
        notify::Flow::Continue
    };
    let url = platform.config.database.url.expose().to_owned();
    notify::Listener::spawn(url, &[notify::KEYS_CHANNEL], handler)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "could not start the LISTEN thread; key changes show after the JWKS cache TTL");
        })
        .ok()
}

/// What the connectors role's handlers share.
pub struct ConnectorsState {
    document: utoipa::openapi::OpenApi,
    /// Verifies callers against the auth role's JWKS (fetched over HTTP, also in `--role all`).
    verifier: web::Data<Verifier>,
    ctx: Arc<Ctx>,
    /// Fans new events out to this process's SSE streams.
    hub: events::Hub,
    jobs: crate::jobs::Registry,
    /// The LISTEN thread for key notices, stopped and joined when the state drops.
    _listener: Option<crate::platform::notify::Listener>,
}

impl ConnectorsState {
    /// Builds the role's state and, when `connectors.refresh.sweep_enabled`, keeps a
    /// `refresh_sweep` job queued from the current tokio runtime (any process's workers run it).
    pub fn new(platform: &Platform) -> anyhow::Result<Self> {
        let config = &platform.config;
        let keys = Arc::new(
            HttpJwksSource::new(config.connectors.jwks_url.clone(), platform.clock.clone())
                .context("building the JWKS client")?,
        );
        let listener = listen_for_key_changes(platform, &keys);
        let verifier = Verifier::new(
            keys,
            config.connectors_jwt_issuer(),
            config.connectors_jwt_audience(),
            platform.clock.clone(),
        );
        let jobs_wake = Arc::new(tokio::sync::Notify::new());
        let intake = start_intake_writer(platform, &jobs_wake)?;
        let jobs_pool = crate::jobs::worker_pool(&platform.pool, &config.database, &config.jobs);
        let agents_poll =
            std::time::Duration::from_millis(config.connectors.agents.poll_ms.max(10));
        let ctx = Arc::new(Ctx {
            pool: platform.pool.clone(),
            jobs_pool: jobs_pool.clone(),
            clock: platform.clock.clone(),
            config: config.clone(),
            http: oauth::http_client(config.connectors.provider_timeout_secs)
                .context("building the provider HTTP client")?,
            vault: vault::Vault::from_config(config).context("loading the encryption keys")?,
            registry: providers::Registry::from_config(&config.connectors.providers),
            mcp: mcp::McpClient::new(
                &config.connectors.mcp,
                crate::platform::ssrf::Policy {
                    allow_loopback: config.connectors.mcp.allow_loopback,
                    allow_private: config.connectors.mcp.allow_private,
                    require_https: config.app_env == crate::platform::config::AppEnv::Production,
                },
                platform.clock.clone(),
            )
            .context("building the MCP client")?,
            mcp_calls: mcp::Recorder::start(
                platform.pool.clone(),
                config.connectors.mcp.record_queue_capacity,
            ),
            jobs_wake,
            intake,
            anthropic: anthropic::Client::new(
                &config.connectors.anthropic,
                config.connectors.anthropic_api_key.clone(),
            )
            .context("building the Anthropic client")?,
            agent_events: agents::hub::EventHub::new(platform.pool.clone(), agents_poll),
            agent_cancels: agents::hub::CancelWatch::new(jobs_pool, agents_poll),
        });
        let recorder = ctx.mcp_calls.clone();
        platform.jobs.on_flush(move || {
            let recorder = recorder.clone();
            Box::pin(async move { recorder.flush().await })
        });
        if config.connectors.refresh.sweep_enabled
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            refresh::spawn_sweep_schedule(ctx.clone(), &runtime);
        }
        crate::jobs::metrics::register(&agents::TURN_OVERHEAD);
        crate::jobs::metrics::register(&agents::TURN_DB_WAIT);
        let jobs = job_registry(&ctx);
        if config.jobs.enabled
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let runner = crate::jobs::Runner::new(
                ctx.jobs_pool.clone(),
                platform.clock.clone(),
                config.jobs.clone(),
                jobs.clone(),
            )
            .with_wake(ctx.jobs_wake.clone());
            let _guard = runtime.enter();
            platform.jobs.add(runner.start());
            webhooks::spawn_prune_schedule(ctx.clone(), &runtime);
        }
        Ok(Self {
            document: openapi::document(ConnectorsApi::openapi(), "switchboard connectors"),
            verifier: web::Data::new(verifier),
            hub: events::Hub::new(
                platform.pool.clone(),
                std::time::Duration::from_millis(config.webhooks.stream_poll_ms.max(1)),
            ),
            ctx,
            jobs,
            _listener: listener,
        })
    }

    /// The verifier the `Caller` extractor finds in app data; mounted next to this state.
    pub fn verifier(&self) -> web::Data<Verifier> {
        self.verifier.clone()
    }

    /// A fresh access token for a connection (refreshed first when under the margin): what
    /// webhooks and agents call. Never logs or returns an expired token.
    pub async fn access_token(&self, id: &ConnectionId) -> Result<Plain, ConnectorsError> {
        refresh::access_token(&self.ctx, id).await
    }

    /// The connectors role's job kinds and their handlers (what its workers run).
    pub fn job_registry(&self) -> crate::jobs::Registry {
        self.jobs.clone()
    }

    /// Queues a refresh sweep due now unless one is queued or running in any process; true
    /// when this call added it.
    pub async fn schedule_sweep(&self) -> Result<bool, ConnectorsError> {
        refresh::schedule_sweep(&self.ctx).await
    }

    /// One pass of the refresh sweep (the `refresh_sweep` job runs this periodically).
    pub async fn sweep_once(&self) -> Result<SweepReport, ConnectorsError> {
        refresh::sweep_once(&self.ctx).await
    }
}

/// The intake writer threads, on their own connections, drained at graceful shutdown.
fn start_intake_writer(
    platform: &Platform,
    wake: &Arc<tokio::sync::Notify>,
) -> anyhow::Result<Arc<webhooks::writer::IntakeWriter>> {
    let config = &platform.config;
    let writers = config.webhooks.intake_writers.max(1);
    let pool = crate::db::build_pool(&crate::platform::config::DatabaseConfig {
        pool_max_size: u32::try_from(writers).unwrap_or(1),
        ..config.database.clone()
    });
    let writer = Arc::new(
        webhooks::writer::IntakeWriter::start(
            pool,
            platform.clock.clone(),
            wake.clone(),
            &webhooks::writer::WriterConfig {
                writers,
                batch_max: config.webhooks.intake_batch_max,
                batch_max_bytes: config.webhooks.intake_batch_max_bytes,
                max_attempts: config.jobs.max_attempts,
            },
        )
        .context("starting the webhook intake writers")?,
    );
    let draining = writer.clone();
    platform
        .on_shutdown
        .add(move || Box::pin(async move { draining.shutdown().await }));
    Ok(writer)
}

/// `webhook_route` (a stored delivery → its connections), `events_prune` (retention) and
/// `refresh_sweep` (tokens nearing expiry).
fn job_registry(ctx: &Arc<Ctx>) -> crate::jobs::Registry {
    let mut registry = crate::jobs::Registry::new();
    let c = ctx.clone();
    registry.register(refresh::SWEEP_KIND, move |job| {
        refresh::run_sweep_job(c.clone(), job)
    });
    let c = ctx.clone();
    registry.register(webhooks::ROUTE_KIND, move |job| {
        webhooks::route::run_route(c.clone(), job)
    });
    let c = ctx.clone();
    registry.register(webhooks::PRUNE_KIND, move |job| {
        webhooks::route::run_prune(c.clone(), job)
    });
    let c = ctx.clone();
    registry.register(agents::RUN_KIND, move |job| agents::run_job(c.clone(), job));
    let c = ctx.clone();
    registry.register(linear_agent::SESSION_KIND, move |job| {
        linear_agent::run_session(c.clone(), job)
    });
    let c = ctx.clone();
    registry.register(linear_agent::REPLY_KIND, move |job| {
        linear_agent::run_reply(c.clone(), job)
    });
    registry
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    use handlers::{connect, connections, providers};
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .route("/api/me", web::get().to(me::me))
        .route("/api/providers", web::get().to(providers::list))
        .route("/api/connections", web::get().to(connections::list))
        .route(
            "/api/connections/{provider}/authorize",
            web::post().to(connect::authorize),
        )
        .route(
            "/api/connections/{provider}/callback",
            web::get().to(connect::callback),
        )
        .route(
            "/api/connections/complete",
            web::post().to(connect::complete),
        )
        .route("/api/connections/{id}", web::get().to(connections::get))
        .route(
            "/api/connections/{id}",
            web::delete().to(connections::delete),
        )
        .route(
            "/api/connections/{id}/refresh",
            web::post().to(connections::refresh),
        )
        .service(web::resource("/webhooks/linear").post(webhooks::linear))
        .service(web::resource("/webhooks/github").post(webhooks::github))
        .route("/api/events", web::get().to(events::list))
        .route("/api/events/stream", web::get().to(events::stream));
    mcp::configure(cfg);
    agents::configure(cfg);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        me::me,
        handlers::providers::list,
        handlers::connect::authorize,
        handlers::connect::callback,
        handlers::connect::complete,
        handlers::connections::list,
        handlers::connections::get,
        handlers::connections::delete,
        handlers::connections::refresh,
        mcp::handlers::add,
        mcp::handlers::list,
        mcp::handlers::get,
        mcp::handlers::delete,
        mcp::handlers::tools,
        mcp::handlers::all_tools,
        mcp::handlers::call,
        mcp::handlers::call_namespaced,
        mcp::auth_handlers::authorize,
        mcp::auth_handlers::callback,
        mcp::auth_handlers::complete,
        mcp::auth_handlers::client_metadata,
        webhooks::intake::linear,
        webhooks::intake::github,
        events::list,
        events::stream,
        agents::handlers::create,
        agents::handlers::list,
        agents::handlers::get,
        agents::handlers::cancel,
        agents::handlers::events,
    ),
    components(schemas(
        me::MeBody,
        models::ConnectionView,
        models::Status,
        handlers::providers::ProviderView,
        handlers::providers::ProviderList,
        handlers::connect::AuthorizeBody,
        handlers::connect::AuthorizeResponse,
        handlers::connect::ConnectedBody,
        handlers::connect::AuthorizedBody,
        handlers::connect::CompleteBody,
        handlers::connections::ConnectionList,
        handlers::connections::DeletedBody,
        mcp::models::ServerView,
        mcp::models::ToolView,
        mcp::Era,
        mcp::ServerFailure,
        mcp::handlers::AddServerBody,
        mcp::handlers::ServerList,
        mcp::handlers::ToolList,
        mcp::handlers::AllTools,
        mcp::handlers::CallBody,
        mcp::handlers::CallResult,
        mcp::handlers::McpDeleted,
        mcp::auth_handlers::McpAuthorizeBody,
        mcp::auth_handlers::McpAuthorizeResponse,
        mcp::auth_handlers::McpAuthorizedBody,
        mcp::auth_handlers::McpCompleteBody,
        mcp::auth_handlers::McpCompletedBody,
        webhooks::intake::AcceptedBody,
        events::EventList,
        events::store::EventView,
        agents::handlers::CreateBody,
        agents::handlers::CreatedBody,
        agents::handlers::RunList,
        agents::models::RunView,
        agents::models::RunDetail,
        agents::models::StepView,
        anthropic::Usage,
    ))
)]
struct ConnectorsApi;

async fn openapi_json(state: web::Data<ConnectorsState>) -> HttpResponse {
    openapi::respond(&state.document)
}

/// `base` ± 20 %, from the OS random source: spreads retries and sweeps of many processes.
pub(crate) fn jitter(base: std::time::Duration) -> std::time::Duration {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut byte = [0u8; 1];
    let r = if SystemRandom::new().fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        0.5
    };
    base.mul_f64(0.8 + 0.4 * r)
}
