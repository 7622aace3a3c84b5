//! The command line: `serve --role …`, `migrate`, `check-config --role …`,
//! `keys rotate|revoke|list|rotate-encryption`, `healthcheck`, `jobs`, `webhooks`, `mcp`.

use crate::platform::role::Role;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Printed after `--help`: what the environment and the files decide.
const AFTER_HELP: &str = "\
Environment and files:
  APP_ENV                 development (default; reads ./.env), test or production
  config folder           --config-dir, else SWITCHBOARD_CONFIG_DIR, else the first of ./config,
                          config/ next to the executable, /etc/switchboard (and, in a debug build,
                          the source tree's config/). Read from it: default.toml, then
                          <APP_ENV>.toml; the environment wins over both (DATABASE_URL,
                          BETTER_AUTH_SECRET, ..., or SWITCHBOARD__SECTION__KEY). Every key and its
                          variable: config/default.toml.
  ports                   auth on AUTH_LISTEN (127.0.0.1:5001), connectors on CONNECTORS_LISTEN
                          (127.0.0.1:5002); each serves /healthz and /readyz.
  RUST_LOG                log filter (default info); logs are JSON in production.

`switchboard check-config --role <role>` runs every start-up check and serves nothing.";

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Better Auth-compatible auth and connectors in one binary",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The folder holding default.toml and <APP_ENV>.toml (env SWITCHBOARD_CONFIG_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<std::path::PathBuf>,
    /// What to do; with none, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chosen roles until SIGTERM or SIGINT.
    Serve(RoleArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Database tools: `db adopt` takes over a database Better Auth created.
    #[command(subcommand)]
    Db(DbCommand),
    /// Load and validate the configuration for the chosen roles, serve nothing.
    CheckConfig(RoleArgs),
    /// Manage keys: JWT signing keys (auth) and the token encryption key (connectors).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Ask the running server on this host whether it is healthy (for a container HEALTHCHECK):
    /// GET /readyz on the chosen roles' listen addresses; exit 0 when every one answers 200.
    Healthcheck(HealthcheckArgs),
    /// Talk to an MCP server directly (list or call tools); writes nothing to the database.
    /// Exit codes: 0 ok, 1 the tool reported isError, 2 bad input or refused URL,
    /// 3 the server needs authorization, 4 the server failed or is unreachable.
    #[cfg(feature = "connectors")]
    #[command(subcommand)]
    Mcp(McpCommand),
    /// The job queue: list jobs, retry dead ones.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Provider webhook deliveries (connectors).
    #[cfg(feature = "connectors")]
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum DbCommand {
    /// Take over a database Better Auth created (its migrator, Drizzle or Prisma; custom table
    /// names; extra columns kept): print the plan, apply it in one transaction, record it so
    /// `migrate` continues. Stop the old auth service first. See docs/migrating-from-typescript.md.
    Adopt(AdoptArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AdoptArgs {
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the SQL that restores the layout found (run it before adopting; keep the file).
    #[arg(long, conflicts_with = "dry_run")]
    pub print_rollback: bool,
    /// Better Auth models kept under other table names (`modelName`): user=users,session=sessions.
    #[arg(long, value_name = "MODEL=TABLE,...")]
    pub table_map: Vec<String>,
    /// The zone `timestamp without time zone` columns were written in (Better Auth writes UTC).
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    pub source_zone: String,
    /// Refuse when a session or user row changed less than this many seconds ago (the old
    /// service is still writing); 0 skips the check.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub quiet_secs: u32,
    /// Adopt even while other clients are connected to the database.
    #[arg(long)]
    pub allow_connections: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    /// The path to ask: /readyz (the database answers too) or /healthz (the process answers).
    #[arg(long, default_value = "/readyz")]
    pub path: String,
    /// Give up on a listener after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

#[cfg(feature = "connectors")]
#[derive(Debug, Clone, Subcommand)]
pub enum McpCommand {
    /// List every tool of the server at URL (JSON on stdout).
    Tools {
        url: String,
        /// A bearer token the server accepts.
        #[arg(long, env = "MCP_BEARER", hide_env_values = true)]
        bearer: Option<String>,
        /// Authorize first (MCP OAuth, loopback redirect): prints a URL to open on stderr.
        #[arg(long, conflicts_with = "bearer")]
        oauth: bool,
    },
    /// Call TOOL with ARGS (a JSON object), checked against the tool's input schema first.
    Call {
        url: String,
        tool: String,
        #[arg(default_value = "{}")]
        args: String,
        #[arg(long, env = "MCP_BEARER", hide_env_values = true)]
        bearer: Option<String>,
        /// Authorize first (MCP OAuth, loopback redirect): prints a URL to open on stderr.
        #[arg(long, conflicts_with = "bearer")]
        oauth: bool,
    },
}

#[cfg(feature = "connectors")]
#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksCommand {
    /// Deliveries that matched no connection, newest first, with the ids routing looked for.
    Unmatched {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// Jobs waiting, running or dead, oldest first (finished jobs are deleted).
    List {
        /// Only these states (queued, running, dead); repeat or comma-separate.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue a dead job again now with fresh attempts, or every dead job with --dead.
    Retry {
        /// The job's id, from `jobs list`.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<i64>,
        /// Every dead job.
        #[arg(long)]
        dead: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every stored OAuth token and PKCE verifier under the current ENCRYPTION_KEY
    /// (after moving the old key to `connectors.previous_encryption_keys`).
    #[cfg(feature = "connectors")]
    RotateEncryption {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
    /// Add a new signing key and retire the current one (it stays in the JWKS for the grace
    /// period). The new key is published by running auth processes at their next key reload
    /// (<= 30 s) and signs `auth.jwt.activation_delay_secs` after that, once caches have it.
    #[cfg(feature = "auth")]
    Rotate {
        /// Sign with the new key at once; the old ones stay in the JWKS only as long as tokens
        /// they signed live. Verifiers that cached the JWKS refetch it on the unknown kid. For
        /// a leaked key use `keys revoke`.
        #[arg(long)]
        now: bool,
    },
    /// Withdraw a key from the JWKS and from signing at once (running processes follow at their
    /// next key reload, <= 30 s; verifiers at their next fetch): tokens it signed stop
    /// verifying. Refused for the only key that can sign, unless --rotate.
    #[cfg(feature = "auth")]
    Revoke {
        /// The key id (`kid`), as `keys list` shows it.
        kid: String,
        /// When it is the only key that can sign: put a new key in its place, signing at once.
        #[arg(long)]
        rotate: bool,
    },
    /// Every key: kid, alg, created, expires, state. Never a private key.
    #[cfg(feature = "auth")]
    List,
}

#[cfg(feature = "auth")]
impl KeysCommand {
    /// The signing-key action this command asks of the auth role; `None` for the connectors'
    /// `rotate-encryption`.
    pub fn key_action(&self) -> Option<crate::auth::jwt::admin::KeyAction> {
        use crate::auth::jwt::admin::KeyAction;
        match self {
            Self::Rotate { now } => Some(KeyAction::Rotate { now: *now }),
            Self::Revoke { kid, rotate } => Some(KeyAction::Revoke {
                kid: kid.clone(),
                rotate: *rotate,
            }),
            Self::List => Some(KeyAction::List),
            #[cfg(feature = "connectors")]
            Self::RotateEncryption { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct RoleArgs {
    /// Which role(s) to run; `all` runs both, each on its own listener.
    #[arg(long, env = "SWITCHBOARD_ROLE", value_enum, default_value_t = RoleArg::default())]
    pub role: RoleArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Auth,
    Connectors,
    All,
}

impl Default for RoleArg {
    /// `all` in a full build; the one role a single-role build contains otherwise.
    fn default() -> Self {
        match (cfg!(feature = "auth"), cfg!(feature = "connectors")) {
            (true, false) => Self::Auth,
            (false, true) => Self::Connectors,
            _ => Self::All,
        }
    }
}

impl RoleArg {
    /// The roles to run, or why this binary cannot run them.
    pub fn roles(self) -> Result<Vec<Role>, String> {
        let wanted = match self {
            Self::Auth => vec![Role::Auth],
            Self::Connectors => vec![Role::Connectors],
            Self::All => vec![Role::Auth, Role::Connectors],
        };
        let missing: Vec<_> = wanted.iter().filter(|r| !r.compiled_in()).collect();
        if let Some(role) = missing.first() {
            return Err(format!(
                "role `{role}` is not compiled into this binary (it was built without the `{role}` feature); \
                 rebuild with `--features {role}` or choose another --role"
            ));
        }
        Ok(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_means_both_roles_in_a_full_build() {
        if cfg!(all(feature = "auth", feature = "connectors")) {
            assert_eq!(RoleArg::All.roles(), Ok(vec![Role::Auth, Role::Connectors]));
        } else {
            assert!(RoleArg::All.roles().is_err());
        }
    }

    #[test]
    fn a_missing_role_is_refused_with_its_feature_named() {
        #[cfg(not(feature = "auth"))]
        {
            let err = RoleArg::Auth.roles().unwrap_err();
            assert!(err.contains("`auth` feature"), "{err}");
        }
        #[cfg(feature = "auth")]
        assert_eq!(RoleArg::Auth.roles(), Ok(vec![Role::Auth]));
    }
}
