//! The `switchboard` binary: parse the command line, load and validate configuration, dispatch.

use clap::Parser;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use switchboard::cli::{Cli, Command, RoleArgs};
use switchboard::platform::config::{AppEnv, Config, ConfigError, dir};
use switchboard::platform::role::Role;
use switchboard::platform::telemetry;
use switchboard::server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(RoleArgs::default()));

    let app_env = AppEnv::parse(std::env::var("APP_ENV").ok().as_deref());
    if matches!(app_env, Ok(AppEnv::Development)) {
        // A missing .env is normal; a malformed one is worth saying.
        if let Err(err) = dotenvy::dotenv()
            && !err.not_found()
        {
            eprintln!("warning: .env not read: {err}");
        }
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    let config_dir = match dir::resolve(
        cli.config_dir.as_deref(),
        env.get("SWITCHBOARD_CONFIG_DIR").map(String::as_str),
        cwd.as_deref(),
        exe.as_deref(),
    ) {
        Ok(found) => found,
        Err(err) => return fail(&err.to_string()),
    };
    let loaded = match Config::load_from(&env, config_dir.path()) {
        Ok(loaded) => loaded,
        Err(err @ ConfigError::Load(_)) => {
            return fail(&format!("{err} ({})", config_dir.describe()));
        }
        Err(err) => return fail(&err.to_string()),
    };
    let config = loaded.config;
    // `mcp` prints JSON on stdout for scripts, so no log lines go there; it reports its own
    // errors on stderr. `healthcheck` runs every few seconds in a container: no start-up lines.
    #[cfg(feature = "connectors")]
    let mcp = matches!(command, Command::Mcp(_));
    #[cfg(not(feature = "connectors"))]
    let mcp = false;
    if !mcp {
        telemetry::init(&config.log, !matches!(command, Command::Serve(_)));
    }
    if !mcp && !matches!(command, Command::Healthcheck(_)) {
        match &config_dir {
            dir::ConfigDir::Found { .. } => tracing::info!(
                app_env = %config.app_env,
                files = ?loaded.files_read.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "{}", config_dir.describe()
            ),
            dir::ConfigDir::None { .. } => tracing::warn!("{}", config_dir.describe()),
        }
        for missing in &loaded.missing {
            tracing::warn!("{missing}");
        }
    }

    match command {
        Command::Serve(args) => {
            let roles = match checked_roles(&config, &args) {
                Ok(roles) => roles,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(err) => return fail(&format!("starting the runtime: {err}")),
            };
            let result = runtime.block_on(server::serve(Arc::new(config), roles));
            // A start-up step stuck on the database (a signal arrived meanwhile) must not keep
            // the process alive: blocking work still running is abandoned.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&format!("{err:#}")),
            }
        }
        Command::CheckConfig(args) => match checked_roles(&config, &args) {
            Ok(roles) => {
                let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "configuration is valid for role(s) {} (APP_ENV={})",
                    names.join(", "),
                    config.app_env
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        #[cfg(feature = "connectors")]
        Command::Keys(switchboard::cli::KeysCommand::RotateEncryption { batch_size }) => {
            if let Err(err) = config.validate(&[Role::Connectors]) {
                return fail(&err.to_string());
            }
            match switchboard::connectors::admin::run(&config, batch_size) {
                Ok(report) => {
                    print!("{report}");
                    if report.failed > 0 {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(err) => fail(&format!("{err:#}")),
            }
        }
        #[cfg(feature = "auth")]
        Command::Keys(keys) => {
            if let Err(err) = config.validate(&[Role::Auth]) {
                return fail(&err.to_string());
            }
            let Some(action) = keys.key_action() else {
                // Not a signing-key command; the arm above hands it to the connectors role.
                return fail("rotate-encryption is a connectors command");
            };
            match switchboard::auth::jwt::admin::run(&config, &action) {
                Ok(output) => {
                    print!("{output}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&format!("{err:#}")),
            }
        }
        Command::Healthcheck(args) => healthcheck(&config, &args),
        #[cfg(feature = "connectors")]
        Command::Mcp(mcp) => run_mcp(&config, mcp),
        Command::Jobs(jobs) => {
            use switchboard::cli::JobsCommand;
            if let Err(err) = config.validate(&[]) {
                return fail(&err.to_string());
            }
            let result = match jobs {
                JobsCommand::List { state, limit } => {
                    switchboard::jobs::admin::list(&config, &state, limit)
                }
                JobsCommand::Retry { dead: true, .. } => {
                    switchboard::jobs::admin::retry_dead(&config)
                }
                JobsCommand::Retry { id, .. } => match id {
                    Some(id) => switchboard::jobs::admin::retry(&config, id),
                    None => Err(anyhow::anyhow!("give a job id or --dead")),
                },
            };
            match result {
                Ok(output) => {
                    print!("{output}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&format!("{err:#}")),
            }
        }
        #[cfg(feature = "connectors")]
        Command::Webhooks(switchboard::cli::WebhooksCommand::Unmatched { limit }) => {
            if let Err(err) = config.validate(&[]) {
                return fail(&err.to_string());
            }
            match switchboard::connectors::webhooks::admin::unmatched(&config, limit) {
                Ok(output) => {
                    print!("{output}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&format!("{err:#}")),
            }
        }
        Command::Db(switchboard::cli::DbCommand::Adopt(args)) => {
            if let Err(err) = config.validate(&[]) {
                return fail(&err.to_string());
            }
            adopt(&config, &args)
        }
        Command::Migrate => {
            if let Err(err) = config.validate(&[]) {
                return fail(&err.to_string());
            }
            let db = config.database.clone();
            let result = switchboard::db::migrate::prepare(&db, true, || {
                println!("created the database named in DATABASE_URL");
            });
            match result {
                Ok(applied) => {
                    println!("migrations applied: {}", applied.len());
                    for version in applied {
                        println!("  {version}");
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&format!("{err:#}")),
            }
        }
    }
}

/// `db adopt`: the plan (or the rollback SQL) on stdout; refusals on stderr, exit 1.
fn adopt(config: &Config, args: &switchboard::cli::AdoptArgs) -> ExitCode {
    use diesel::Connection;
    use switchboard::db::adopt;
    let options = adopt::Options {
        dry_run: args.dry_run,
        print_rollback: args.print_rollback,
        table_map: args.table_map.clone(),
        source_zone: args.source_zone.clone(),
        quiet_secs: args.quiet_secs,
        allow_connections: args.allow_connections,
    };
    let mut conn = match diesel::PgConnection::establish(config.database.url.expose()) {
        Ok(conn) => conn,
        Err(err) => return fail(&format!("connecting to the database: {err}")),
    };
    match adopt::run(&mut conn, &options) {
        Ok(outcome) if options.print_rollback => {
            print!("{}", outcome.rollback_sql());
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            print!("{}", outcome.plan.describe());
            for warning in &outcome.warnings {
                println!("warning: {warning}");
            }
            if outcome.applied {
                println!(
                    "adopted: migration {} recorded; next: `switchboard migrate`",
                    outcome.version
                );
            } else {
                println!("dry run: nothing changed");
            }
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err.to_string()),
    }
}

fn healthcheck(config: &Config, args: &switchboard::cli::HealthcheckArgs) -> ExitCode {
    let roles = match args.role.role.roles() {
        Ok(roles) => roles,
        Err(err) => return fail(&err),
    };
    let timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
    let mut healthy = true;
    for role in roles {
        let listen = match role {
            Role::Auth => &config.server.auth_listen,
            Role::Connectors => &config.server.connectors_listen,
        };
        match switchboard::platform::health::probe(listen, &args.path, timeout) {
            Ok(()) => println!("{role}: ok ({listen}{})", args.path),
            Err(why) => {
                eprintln!("{role}: unhealthy: {why}");
                healthy = false;
            }
        }
    }
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn checked_roles(config: &Config, args: &RoleArgs) -> Result<Vec<Role>, ExitCode> {
    let roles = args.role.roles().map_err(|e| fail(&e))?;
    config.validate(&roles).map_err(|e| fail(&e.to_string()))?;
    Ok(roles)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `switchboard mcp …`: JSON on stdout, one error line on stderr, documented exit codes.
#[cfg(feature = "connectors")]
fn run_mcp(config: &Config, command: switchboard::cli::McpCommand) -> ExitCode {
    use switchboard::cli::McpCommand;
    use switchboard::connectors::mcp::cli;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("starting the runtime: {err}")),
    };
    let result = runtime.block_on(async {
        match command {
            McpCommand::Tools { url, bearer, oauth } => {
                cli::tools(config, &url, bearer, oauth).await
            }
            McpCommand::Call {
                url,
                tool,
                args,
                bearer,
                oauth,
            } => cli::call(config, &url, &tool, &args, bearer, oauth).await,
        }
    });
    match result {
        Ok(out) => {
            println!("{}", out.stdout);
            ExitCode::from(out.code)
        }
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}
