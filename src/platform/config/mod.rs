//! The one typed configuration, loaded in layers (built-in defaults, `config/default.toml`,
//! `config/$APP_ENV.toml`, environment) and validated for the chosen roles before any socket opens.
//!
//! This module owns `[server]`, `[database]`, `[log]` and `[jobs]`, the loader and the
//! composition; each role owns its sections and their checks (`auth::config` for `[auth]`,
//! `connectors::config` for `[connectors]` and `[webhooks]`), compiled in with the role.

use crate::platform::role::Role;
use crate::platform::secret::Secret;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// The built-in defaults are `config/default.toml` itself, compiled in, so that file stays the
/// single place every key and its default is written down.
const BUILT_IN_DEFAULTS: &str = include_str!("../../../config/default.toml");

/// Secrets that ship in `config/development.toml` and `config/test.toml` start with this, and
/// production refuses them.
pub const DEV_SECRET_PREFIX: &str = "dev-only-";

/// Better Auth's fallback secret when none is set; production must never run with it.
const BETTER_AUTH_DEFAULT_SECRET: &str = "better-auth-secret-12345678901234567890";

/// The environment names of the original TypeScript services, read as they are, and the key each
/// one sets. Every other key can be set as `SWITCHBOARD__SECTION__KEY`.
pub const LEGACY_ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("AUTH_LISTEN", "server.auth_listen"),
    ("CONNECTORS_LISTEN", "server.connectors_listen"),
    ("CORS_ORIGINS", "server.cors_origins"),
    ("BETTER_AUTH_URL", "auth.base_url"),
    ("BETTER_AUTH_SECRET", "auth.secret"),
    ("BETTER_AUTH_TRUSTED_ORIGINS", "auth.trusted_origins"),
    ("JWT_SECRET", "auth.jwt_secret"),
    ("GITHUB_CLIENT_ID", "auth.github.client_id"),
    ("GITHUB_CLIENT_SECRET", "auth.github.client_secret"),
    ("RESEND_API_KEY", "auth.resend_api_key"),
    ("CONNECTORS_URL", "connectors.public_url"),
    ("AUTH_JWKS_URL", "connectors.jwks_url"),
    ("ENCRYPTION_KEY", "connectors.encryption_key"),
    ("LINEAR_CLIENT_ID", "connectors.providers.linear.client_id"),
    (
        "LINEAR_CLIENT_SECRET",
        "connectors.providers.linear.client_secret",
    ),
    ("ANTHROPIC_API_KEY", "connectors.anthropic_api_key"),
    ("RUST_LOG", "log.filter"),
    ("LINEAR_WEBHOOK_SECRET", "webhooks.linear_secret"),
    ("GITHUB_WEBHOOK_SECRET", "webhooks.github_secret"),
];

/// Keys whose value is a comma-separated list when it comes from the environment.
const LIST_KEYS: &[&str] = &[
    "server.cors_origins",
    "auth.trusted_origins",
    "auth.rate_limit.trusted_proxies",
    "auth.github.scopes",
    "auth.account_linking.trusted_providers",
    "connectors.previous_encryption_keys",
    "connectors.providers.linear.scopes",
    "connectors.providers.github.scopes",
    "webhooks.linear_previous_secrets",
    "webhooks.github_previous_secrets",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

impl AppEnv {
    pub fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None | Some("development") => Ok(Self::Development),
            Some("test") => Ok(Self::Test),
            Some("production") => Ok(Self::Production),
            Some(other) => Err(ConfigError::Invalid(vec![format!(
                "APP_ENV must be development, test or production, not {other:?}"
            )])),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

/// Every section of the config files. `platform` owns `server`, `database`, `log` and `jobs`;
/// each role owns its own sections (`auth`: `crate::auth::config`; `connectors` and `webhooks`:
/// `crate::connectors::config`) and they exist here only when the role is compiled in. The
/// config files are shared by every deployment, so a build without a role still accepts that
/// role's sections without reading them, while any other unknown key is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Set from `APP_ENV`, never from a file.
    pub app_env: AppEnv,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    #[cfg(feature = "auth")]
    pub auth: crate::auth::config::AuthConfig,
    /// Without the auth role: the one key of `[auth]` the connectors role reads.
    #[cfg(not(feature = "auth"))]
    #[serde(rename = "auth")]
    auth_peer: AuthPeer,
    #[cfg(feature = "connectors")]
    pub connectors: crate::connectors::config::ConnectorsConfig,
    #[cfg(not(feature = "connectors"))]
    #[serde(default, rename = "connectors")]
    _connectors: OtherRoleSection,
    /// Whether `BETTER_AUTH_URL` (auth.base_url) was given rather than left at its default;
    /// set by the loader, never from a file.
    #[serde(skip)]
    pub auth_base_url_set: bool,
    pub jobs: JobsConfig,
    #[cfg(feature = "connectors")]
    pub webhooks: crate::connectors::config::WebhooksConfig,
    #[cfg(not(feature = "connectors"))]
    #[serde(default, rename = "webhooks")]
    _webhooks: OtherRoleSection,
}

/// A section owned by a role this build does not have: accepted whatever it holds, never read.
#[cfg(not(feature = "connectors"))]
type OtherRoleSection = serde::de::IgnoredAny;

/// `[auth]` in a build without the auth role: only the auth role's public URL, from which the
/// connectors role derives the JWT issuer and audience it expects. The other keys belong to
/// the auth role and are not looked at.
#[cfg(not(feature = "auth"))]
#[derive(Debug, Clone, Deserialize)]
struct AuthPeer {
    base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub auth_listen: String,
    pub connectors_listen: String,
    /// Explicit browser origins allowed to call both roles with credentials.
    pub cors_origins: Vec<String>,
    /// Largest JSON body accepted, in bytes.
    pub json_limit_bytes: usize,
    /// HTTP worker threads per listener; 0 means one per core.
    pub workers: usize,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    pub shutdown_timeout_secs: u64,
    /// After SIGTERM, how long `/readyz` answers 503 while the listeners still serve, so a load
    /// balancer takes the process out of rotation before it stops accepting (0: stop at once).
    #[serde(default)]
    pub drain_delay_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// May carry a password, so it is kept as a secret.
    pub url: Secret,
    pub pool_max_size: u32,
    pub connect_timeout_secs: u64,
    pub migrate_on_start: bool,
    pub create_if_missing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

pub mod dir;
mod jobs;

pub use jobs::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not load configuration: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// Every problem found, one per entry.
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Load(m) => vec![m.clone()],
            Self::Invalid(p) => p.clone(),
        }
    }
}

/// What [`Config::load_from`] found besides the configuration: the files it read and what it
/// looked for in vain, for `main` to log once logging is set up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The config files that were read, in layer order.
    pub files_read: Vec<PathBuf>,
    /// Expected files or folders that were not there.
    pub missing: Vec<String>,
}

/// Production logs are JSON even when no config file says so.
const PRODUCTION_DEFAULTS: &str = "[log]\nformat = \"json\"\n";

impl Config {
    /// Loads the layers from `config_dir` and `env` (the process environment in `main`, a map of
    /// the test's choosing in tests). Validation is separate: see [`Config::validate`].
    pub fn load(env: &HashMap<String, String>, config_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_from(env, Some(config_dir)).map(|loaded| loaded.config)
    }

    /// Like [`Config::load`], with no folder at all when `config_dir` is `None` (built-in
    /// defaults and the environment only), and saying which files were read. Every environment
    /// value that does not fit its key is reported at once, by the variable's name.
    pub fn load_from(
        env: &HashMap<String, String>,
        config_dir: Option<&Path>,
    ) -> Result<Loaded, ConfigError> {
        let app_env = AppEnv::parse(env.get("APP_ENV").map(String::as_str))?;
        let mut env: HashMap<String, String> = env
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        let mut files_read = Vec::new();
        let mut missing = Vec::new();
        if let Some(dir) = config_dir {
            for name in ["default.toml".to_owned(), format!("{app_env}.toml")] {
                let path = dir.join(&name);
                if path.is_file() {
                    files_read.push(path);
                } else if name != "default.toml" {
                    missing.push(format!(
                        "{} not found (APP_ENV={app_env}); only the defaults and the environment apply",
                        path.display()
                    ));
                }
            }
        }

        // A value that does not fit is reported by its variable, then dropped so the next one
        // shows too: every problem at once, not one per start.
        let mut problems = Vec::new();
        for _ in 0..=env.len() {
            match Self::build(&env, app_env, &files_read) {
                Ok(mut config) => {
                    if !problems.is_empty() {
                        return Err(ConfigError::Invalid(problems));
                    }
                    config.auth_base_url_set = base_url_given(&env, &files_read);
                    return Ok(Loaded {
                        config,
                        files_read,
                        missing,
                    });
                }
                Err(err) => match env_var_of(&err, &env) {
                    Some(var) => {
                        problems.push(describe_env_error(&var, &err));
                        env.remove(&var);
                    }
                    None if problems.is_empty() => return Err(ConfigError::Load(err.to_string())),
                    None => {
                        problems.push(err.to_string());
                        return Err(ConfigError::Invalid(problems));
                    }
                },
            }
        }
        Err(ConfigError::Invalid(problems))
    }

    fn build(
        env: &HashMap<String, String>,
        app_env: AppEnv,
        files: &[PathBuf],
    ) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            BUILT_IN_DEFAULTS,
            config::FileFormat::Toml,
        ));
        if app_env == AppEnv::Production {
            builder = builder.add_source(config::File::from_str(
                PRODUCTION_DEFAULTS,
                config::FileFormat::Toml,
            ));
        }
        for file in files {
            builder = builder.add_source(config::File::from(file.as_path()));
        }
        builder = builder.add_source(switchboard_env(env));
        for (name, key) in LEGACY_ENV {
            let Some(value) = env.get(*name) else {
                continue;
            };
            builder = if LIST_KEYS.contains(key) {
                builder.set_override(*key, split_list(value))
            } else {
                builder.set_override(*key, value.as_str())
            }?;
        }
        builder
            .set_override("app_env", app_env.as_str())?
            .build()?
            .try_deserialize::<Config>()
    }

    /// Checks everything the given roles need and reports every problem at once.
    pub fn validate(&self, roles: &[Role]) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let production = self.app_env == AppEnv::Production;
        let needs_auth = roles.contains(&Role::Auth);
        let needs_connectors = roles.contains(&Role::Connectors);

        let db_url = self.database.url.expose();
        if !(db_url.starts_with("postgres://") || db_url.starts_with("postgresql://")) {
            problems.push("DATABASE_URL must be a postgres:// or postgresql:// URL".to_owned());
        }
        if self.database.pool_max_size == 0 {
            problems.push(
                "database.pool_max_size (SWITCHBOARD__DATABASE__POOL_MAX_SIZE) must be at least 1"
                    .to_owned(),
            );
        }
        if self.server.json_limit_bytes < 1024 {
            problems.push("server.json_limit_bytes must be at least 1024".to_owned());
        }

        let auth_listen = check_listen(&mut problems, "AUTH_LISTEN", &self.server.auth_listen);
        let connectors_listen = check_listen(
            &mut problems,
            "CONNECTORS_LISTEN",
            &self.server.connectors_listen,
        );
        if needs_auth
            && needs_connectors
            && auth_listen.is_some()
            && auth_listen == connectors_listen
        {
            problems.push("AUTH_LISTEN and CONNECTORS_LISTEN must differ".to_owned());
        }

        for origin in &self.server.cors_origins {
            match explicit_origin(origin) {
                Err(why) => problems.push(format!("CORS_ORIGINS entry {origin:?} {why}")),
                Ok(url) if production && url.scheme() != "https" => problems.push(format!(
                    "CORS_ORIGINS entry {origin:?} must be https in production"
                )),
                Ok(_) => {}
            }
        }

        // Each role checks its own sections; a role that is not compiled in cannot be asked for.
        #[cfg(feature = "auth")]
        if needs_auth {
            self.validate_auth(&mut problems, production);
        }
        #[cfg(feature = "connectors")]
        if needs_connectors {
            self.validate_connectors(&mut problems, production, needs_auth);
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            problems.push(format!(
                "RUST_LOG (log.filter) is not a valid filter: {err}; e.g. RUST_LOG=info or \
                 RUST_LOG=info,switchboard=debug"
            ));
        }
        self.jobs.validate(&mut problems);

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The auth role's public URL (`BETTER_AUTH_URL`, `auth.base_url`): the auth role's own
    /// setting, which the connectors role reads too, for the JWT issuer and audience it expects.
    pub fn auth_base_url(&self) -> &str {
        #[cfg(feature = "auth")]
        return &self.auth.base_url;
        #[cfg(not(feature = "auth"))]
        return &self.auth_peer.base_url;
    }
}

/// `SWITCHBOARD__SECTION__KEY` variables as a config source.
fn switchboard_env(env: &HashMap<String, String>) -> config::Environment {
    let mut source = config::Environment::with_prefix("SWITCHBOARD")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(
            env.iter()
                .filter(|(k, _)| k.starts_with("SWITCHBOARD__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ));
    for key in LIST_KEYS {
        source = source.with_list_parse_key(key);
    }
    source
}

/// The key a loading error is about, without list indexes (`a.b[0]` -> `a.b`).
fn error_key(err: &config::ConfigError) -> Option<String> {
    let key = match err {
        config::ConfigError::Type { key, .. } | config::ConfigError::At { key, .. } => key.clone(),
        _ => None,
    }?;
    Some(key.split('[').next().unwrap_or_default().to_owned())
}

/// The environment variable that set the key `err` is about, when one did.
fn env_var_of(err: &config::ConfigError, env: &HashMap<String, String>) -> Option<String> {
    let key = error_key(err)?;
    if let Some((name, _)) = LEGACY_ENV
        .iter()
        .find(|(name, k)| *k == key && env.contains_key(*name))
    {
        return Some((*name).to_owned());
    }
    let wanted = format!("SWITCHBOARD__{}", key.replace('.', "__"));
    env.keys()
        .find(|k| k.eq_ignore_ascii_case(&wanted))
        .cloned()
}

/// What is wrong with `var`'s value, without the value (it may be a secret).
fn describe_env_error(var: &str, err: &config::ConfigError) -> String {
    let key = error_key(err).unwrap_or_default();
    match err {
        config::ConfigError::Type { expected, .. } => {
            format!("{var} must be {expected} (it sets {key})")
        }
        config::ConfigError::At { error, .. } => format!("{var} is not valid for {key}: {error}"),
        other => format!("{var}: {other}"),
    }
}

/// Whether the auth role's public URL was given (environment or a config file), rather than
/// left at the built-in `http://localhost:5001`.
fn base_url_given(env: &HashMap<String, String>, files: &[PathBuf]) -> bool {
    if env.contains_key("BETTER_AUTH_URL")
        || env
            .keys()
            .any(|k| k.eq_ignore_ascii_case("SWITCHBOARD__AUTH__BASE_URL"))
    {
        return true;
    }
    // config/default.toml repeats the built-in default (it documents every key); only a value
    // that differs from it, or one in another file, says where the auth role is.
    let built_in = config::Config::builder()
        .add_source(config::File::from_str(
            BUILT_IN_DEFAULTS,
            config::FileFormat::Toml,
        ))
        .build()
        .ok()
        .and_then(|c| c.get_string("auth.base_url").ok());
    files.iter().any(|file| {
        let value = config::Config::builder()
            .add_source(config::File::from(file.as_path()))
            .build()
            .ok()
            .and_then(|c| c.get_string("auth.base_url").ok());
        match value {
            None => false,
            Some(_) if file.file_name().is_none_or(|n| n != "default.toml") => true,
            Some(v) => Some(v) != built_in,
        }
    })
}

/// `scheme://host[:port]` of a URL (Better Auth's `options.baseURL`); the input itself when it
/// does not parse, which validation reports.
pub(crate) fn url_origin(value: &str) -> String {
    Url::parse(value)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| value.to_owned())
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn is_dev_secret(secret: &Secret) -> bool {
    let value = secret.expose();
    value.starts_with(DEV_SECRET_PREFIX) || value == BETTER_AUTH_DEFAULT_SECRET
}

fn check_listen(problems: &mut Vec<String>, name: &str, value: &str) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "{name} must be an address with a port, like 127.0.0.1:5001 (got {value:?})"
            ));
            None
        }
    }
}

pub(crate) fn check_pair(
    problems: &mut Vec<String>,
    prefix: &str,
    client_id: Option<&str>,
    client_secret: Option<&Secret>,
) {
    let has_id = client_id.is_some_and(|s| !s.is_empty());
    let has_secret = client_secret.is_some_and(|s| !s.is_empty());
    if has_id != has_secret {
        problems.push(format!(
            "{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET must be set together"
        ));
    }
}

pub(crate) fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL with a host".to_owned());
    }
    Ok(url)
}

/// A public base URL: http(s), a host, no query or fragment.
pub(crate) fn base_url(value: &str) -> Result<Url, String> {
    let url = http_url(value)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment".to_owned());
    }
    Ok(url)
}

/// An exact origin (`scheme://host[:port]`): no wildcard, no path.
pub fn explicit_origin(value: &str) -> Result<Url, String> {
    if value.contains('*') {
        return Err("must be an explicit origin, not a wildcard".to_owned());
    }
    let url = http_url(value)?;
    if url.origin().ascii_serialization() != value.trim_end_matches('/') || url.path() != "/" {
        return Err("must be an origin only: scheme://host[:port], no path".to_owned());
    }
    Ok(url)
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config/` as shipped, with `APP_ENV=test` and `vars` on top.
    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = vars
            .iter()
            .chain(&[("APP_ENV", "test")])
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load(&env, &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
    }

    /// The files carry every role's sections (`[auth]`, `[connectors]`, `[webhooks]`), since both
    /// deployments share them: every build loads them and passes its own roles' checks.
    #[test]
    fn the_shared_config_files_load_and_validate_in_every_build() {
        let config = load(&[]).unwrap();
        let roles: Vec<Role> = [Role::Auth, Role::Connectors]
            .into_iter()
            .filter(|r| r.compiled_in())
            .collect();
        config.validate(&roles).unwrap();
        for role in roles {
            config.validate(&[role]).unwrap();
        }
    }

    /// A section of a role this build lacks is accepted whatever it holds; inside a role that is
    /// compiled in, and at the top level, an unknown key is refused.
    #[test]
    fn another_roles_section_is_accepted_and_an_unknown_key_refused() {
        for (var, section_compiled_in) in [
            ("SWITCHBOARD__AUTH__NO_SUCH_KEY", cfg!(feature = "auth")),
            (
                "SWITCHBOARD__CONNECTORS__NO_SUCH_KEY",
                cfg!(feature = "connectors"),
            ),
            (
                "SWITCHBOARD__WEBHOOKS__NO_SUCH_KEY",
                cfg!(feature = "connectors"),
            ),
        ] {
            match load(&[(var, "1")]) {
                Ok(_) => assert!(!section_compiled_in, "{var} was accepted"),
                Err(err) => {
                    assert!(section_compiled_in, "{var}: {err}");
                    assert!(err.to_string().contains("no_such_key"), "{err}");
                }
            }
        }
        let err = load(&[("SWITCHBOARD__NO_SUCH_SECTION__KEY", "1")]).unwrap_err();
        assert!(err.to_string().contains("no_such_section"), "{err}");
    }

    /// `validate` runs a compiled-in role's own checks when that role is chosen, and only then.
    #[test]
    fn each_compiled_role_checks_its_own_sections() {
        let reported = |vars: &[(&str, &str)], role: Role, needle: &str| {
            let config = load(vars).unwrap();
            let problems = config.validate(&[role]).err().map(|e| e.problems());
            problems
                .unwrap_or_default()
                .iter()
                .any(|p| p.contains(needle))
        };
        #[cfg(feature = "auth")]
        assert!(reported(
            &[("BETTER_AUTH_SECRET", "short")],
            Role::Auth,
            "BETTER_AUTH_SECRET"
        ));
        #[cfg(feature = "connectors")]
        {
            assert!(reported(
                &[("ENCRYPTION_KEY", "short")],
                Role::Connectors,
                "ENCRYPTION_KEY"
            ));
            assert!(reported(
                &[("SWITCHBOARD__WEBHOOKS__BODY_LIMIT_BYTES", "1")],
                Role::Connectors,
                "webhooks.body_limit_bytes"
            ));
        }
        #[cfg(all(feature = "auth", feature = "connectors"))]
        {
            assert!(!reported(
                &[("BETTER_AUTH_SECRET", "short")],
                Role::Connectors,
                "BETTER_AUTH_SECRET"
            ));
            assert!(!reported(
                &[("ENCRYPTION_KEY", "short")],
                Role::Auth,
                "ENCRYPTION_KEY"
            ));
        }
    }

    /// The connectors role reads `auth.base_url` (`BETTER_AUTH_URL`) with or without the auth
    /// role compiled in.
    #[cfg(feature = "connectors")]
    #[test]
    fn the_connectors_role_reads_the_auth_base_url_in_every_build() {
        let config = load(&[("BETTER_AUTH_URL", "https://auth.example.com/base")]).unwrap();
        assert_eq!(config.auth_base_url(), "https://auth.example.com/base");
        assert_eq!(config.connectors_jwt_issuer(), "https://auth.example.com");
        assert_eq!(config.connectors_jwt_audience(), "https://auth.example.com");
    }
}
