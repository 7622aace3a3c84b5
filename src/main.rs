//! The `switchboard` binary: parse the command line, load and validate configuration, dispatch.

use clap::Parser;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use switchboard::cli::{Cli, Command, RoleArgs};
use switchboard::platform::config::{AppEnv, Config};
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
    let config_dir = env
        .get("SWITCHBOARD_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"));
    let config = match Config::load(&env, &config_dir) {
        Ok(config) => config,
        Err(err) => return fail(&err.to_string()),
    };
    telemetry::init(&config.log);

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
            match runtime.block_on(server::serve(Arc::new(config), roles)) {
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
            match switchboard::auth::jwt::admin::run(&config, &keys) {
                Ok(output) => {
                    print!("{output}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&format!("{err:#}")),
            }
        }
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
        Command::Migrate => {
            if let Err(err) = config.validate(&[]) {
                return fail(&err.to_string());
            }
            let db = config.database.clone();
            let result = (|| {
                if db.create_if_missing {
                    switchboard::db::migrate::create_database_if_missing(db.url.expose())
                        .map_err(|e| anyhow::anyhow!("creating the database: {e}"))?;
                }
                server::migrate(&db)
            })();
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

fn checked_roles(config: &Config, args: &RoleArgs) -> Result<Vec<Role>, ExitCode> {
    let roles = args.role.roles().map_err(|e| fail(&e))?;
    config.validate(&roles).map_err(|e| fail(&e.to_string()))?;
    Ok(roles)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
