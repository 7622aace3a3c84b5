//! The one typed configuration, loaded in layers (built-in defaults, `config/default.toml`,
//! `config/$APP_ENV.toml`, environment) and validated for the chosen roles before any socket opens.

use crate::platform::role::Role;
use crate::platform::secret::Secret;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use url::Url;

/// The built-in defaults are `config/default.toml` itself, compiled in, so that file stays the
/// single place every key and its default is written down.
const BUILT_IN_DEFAULTS: &str = include_str!("../../config/default.toml");

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Set from `APP_ENV`, never from a file.
    pub app_env: AppEnv,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub connectors: ConnectorsConfig,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub base_url: String,
    pub secret: Secret,
    pub jwt_secret: Secret,
    pub trusted_origins: Vec<String>,
    /// `None` follows Better Auth: secure exactly when `base_url` is https.
    pub secure_cookies: Option<bool>,
    pub resend_api_key: Option<Secret>,
    pub github: GithubConfig,
    pub email_and_password: EmailAndPasswordConfig,
    pub session: SessionConfig,
    pub user: UserConfig,
    pub rate_limit: RateLimitConfig,
    pub jwt: JwtConfig,
    pub account_linking: AccountLinkingConfig,
    pub mail: MailConfig,
    pub email_verification: EmailVerificationConfig,
    pub password_reset: PasswordResetConfig,
}

/// GitHub sign-in: the OAuth app's credentials and every GitHub URL, so tests (and GitHub
/// Enterprise) can point them elsewhere. Configured when both credentials are set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub authorize_url: String,
    pub token_url: String,
    pub api_url: String,
    /// Asked for on top of `read:user user:email`.
    pub scopes: Vec<String>,
}

impl GithubConfig {
    pub fn is_configured(&self) -> bool {
        self.client_id.as_deref().is_some_and(|s| !s.is_empty())
            && self.client_secret.as_ref().is_some_and(|s| !s.is_empty())
    }
}

/// Better Auth's `account.accountLinking` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountLinkingConfig {
    /// Implicit linking on sign-in (same email) and `link-social`.
    pub enabled: bool,
    /// Providers whose emails count as verified even when the provider says otherwise.
    pub trusted_providers: Vec<String>,
    /// `link-social` may link an account whose email differs from the user's.
    pub allow_different_emails: bool,
    /// `unlink-account` may remove a user's last account.
    pub allow_unlinking_all: bool,
}

/// Which way mail leaves the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Resend when `RESEND_API_KEY` is set, else the log.
    Auto,
    Resend,
    /// Development: log the recipient, subject and link; send nothing.
    Log,
}

/// How mail is sent and what it says about who sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// Named in subjects and bodies.
    pub product_name: String,
    /// `Name <address>` on a domain verified with Resend.
    pub from: String,
    pub reply_to: Option<String>,
    pub resend_base_url: String,
    pub connect_timeout_ms: u64,
    /// Bound on one attempt, response included.
    pub timeout_ms: u64,
    /// Retries after the first attempt, on 429 (not quota), 5xx, timeouts and connect errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry. A `retry-after` header wins, capped at 10 s.
    pub retry_backoff_ms: u64,
}

impl MailConfig {
    /// The transport `auto` resolves to for this key.
    pub fn effective_transport(&self, api_key: Option<&Secret>) -> MailTransport {
        match self.transport {
            MailTransport::Auto if api_key.is_some_and(|k| !k.is_empty()) => MailTransport::Resend,
            MailTransport::Auto => MailTransport::Log,
            other => other,
        }
    }
}

/// Better Auth's `emailVerification` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailVerificationConfig {
    /// Whether a `sendVerificationEmail` hook exists: off answers `VERIFICATION_EMAIL_NOT_ENABLED`.
    pub enabled: bool,
    /// Unset follows `email_and_password.require_email_verification` (Better Auth's default).
    pub send_on_sign_up: Option<bool>,
    pub send_on_sign_in: bool,
    pub auto_sign_in_after_verification: bool,
    pub expires_in_secs: i64,
    /// `send-verification-email` without a session answers no sooner than this, so its timing
    /// does not tell who has an account.
    pub anonymous_min_response_ms: u64,
}

/// Better Auth's password-reset options (`sendResetPassword` and friends).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfig {
    /// Whether a `sendResetPassword` hook exists: off answers `RESET_PASSWORD_DISABLED`.
    pub enabled: bool,
    pub token_expires_in_secs: i64,
    pub revoke_sessions_on_reset: bool,
}

impl AuthConfig {
    /// Whether sign-up sends a verification mail.
    pub fn send_on_sign_up(&self) -> bool {
        self.email_verification.enabled
            && self
                .email_verification
                .send_on_sign_up
                .unwrap_or(self.email_and_password.require_email_verification)
    }

    /// Whether any flow sends mail.
    pub fn sends_mail(&self) -> bool {
        self.email_verification.enabled || self.password_reset.enabled
    }
}

/// Better Auth's `emailAndPassword` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailAndPasswordConfig {
    pub enabled: bool,
    pub disable_sign_up: bool,
    pub min_password_length: usize,
    pub max_password_length: usize,
    pub require_email_verification: bool,
    pub auto_sign_in: bool,
}

/// Better Auth's `session` options, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    pub expires_in_secs: i64,
    pub update_age_secs: i64,
    pub fresh_age_secs: i64,
}

/// Better Auth's `user` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub change_email_enabled: bool,
    pub update_email_without_verification: bool,
    pub delete_user_enabled: bool,
}

/// `[auth.rate_limit]`: Better Auth's rate limits (spec §7), enforced by `auth::rate_limit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `None` follows Better Auth: on exactly when `APP_ENV=production`.
    pub enabled: Option<bool>,
    /// The general rule for every path no special or custom rule covers.
    pub window_secs: u64,
    pub max: u32,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    pub trusted_proxies: Vec<String>,
    /// Most buckets kept in memory; past it the least recently used are dropped.
    pub max_entries: usize,
    /// Per-path overrides, checked before the built-in rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RateLimitRuleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRuleConfig {
    /// The path after `/api/auth`; a trailing `*` matches any path with that prefix.
    pub path: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Unset: the general `window_secs` / `max`.
    pub window_secs: Option<u64>,
    pub max: Option<u32>,
}

fn default_true() -> bool {
    true
}

impl RateLimitConfig {
    /// Whether limits apply under `app_env`; an explicit `enabled` wins.
    pub fn enabled_in(&self, app_env: AppEnv) -> bool {
        self.enabled.unwrap_or(app_env == AppEnv::Production)
    }

    /// `trusted_proxies` as networks; a bare address is a network of one.
    pub fn proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, Vec<String>> {
        let mut nets = Vec::new();
        let mut problems = Vec::new();
        for entry in &self.trusted_proxies {
            let entry = entry.trim();
            match entry.parse::<ipnet::IpNet>() {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => match entry.parse::<std::net::IpAddr>() {
                    Ok(ip) => nets.push(ip.into()),
                    Err(_) => problems.push(format!(
                        "auth.rate_limit.trusted_proxies entry {entry:?} is not an IP address or CIDR"
                    )),
                },
            }
        }
        if problems.is_empty() {
            Ok(nets)
        } else {
            Err(problems)
        }
    }

    fn check(&self, problems: &mut Vec<String>) {
        if let Err(bad) = self.proxy_nets() {
            problems.extend(bad);
        }
        if self.window_secs == 0 || self.max == 0 {
            problems.push("auth.rate_limit.window_secs and max must be at least 1".to_owned());
        }
        if self.max_entries == 0 {
            problems.push("auth.rate_limit.max_entries must be at least 1".to_owned());
        }
        for rule in &self.rules {
            if !rule.path.starts_with('/') {
                problems.push(format!(
                    "auth.rate_limit.rules path {:?} must start with / (the path after /api/auth)",
                    rule.path
                ));
            }
            if rule.window_secs == Some(0) || rule.max == Some(0) {
                problems.push(format!(
                    "auth.rate_limit.rules {:?}: window_secs and max must be at least 1 (use enabled = false to turn a path off)",
                    rule.path
                ));
            }
        }
    }
}

/// The JWT plugin: signing keys in the `jwks` table and the tokens signed with them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Algorithm of newly generated keys.
    pub alg: JwtAlgorithm,
    /// `iss`; `None` = the `BETTER_AUTH_URL` origin (Better Auth's default).
    pub issuer: Option<String>,
    /// `aud`; `None` = the `BETTER_AUTH_URL` origin.
    pub audience: Option<String>,
    /// `exp - iat`.
    pub expires_in_secs: u64,
    /// Rotate automatically when the signing key is this old; `None` = only `keys rotate`.
    pub rotation_interval_secs: Option<u64>,
    /// How long a retired key stays in the JWKS after it stops signing.
    pub grace_period_secs: u64,
    /// How long a rotated-in key is published before it signs, so every JWKS cache that honours
    /// `Cache-Control` (and every auth process) has it before the first token naming it arrives.
    pub activation_delay_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JwtAlgorithm {
    Eddsa,
    Es256,
    Rs256,
    Ps256,
}

impl JwtAlgorithm {
    /// The JOSE `alg` name.
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::Eddsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Public base URL of the connectors role; OAuth `redirect_uri`s are built from it.
    pub public_url: String,
    pub jwks_url: String,
    /// The key that seals stored OAuth tokens now (AES-256-GCM, exactly 32 bytes).
    pub encryption_key: Secret,
    /// The version sealed values carry (`v<N>:`) for `encryption_key`.
    pub encryption_key_version: u32,
    /// Retired keys as `"<version>:<32-byte key>"`: they only open values sealed before a
    /// rotation, until `switchboard keys rotate-encryption` has re-sealed them.
    pub previous_encryption_keys: Vec<Secret>,
    pub anthropic_api_key: Option<Secret>,
    pub providers: ProvidersConfig,
    /// The `iss` a caller's JWT must carry; `None` = the `BETTER_AUTH_URL` origin, which is
    /// what the auth role writes unless `auth.jwt.issuer` overrides it.
    pub jwt_issuer: Option<String>,
    /// The `aud` a caller's JWT must carry; `None` = the same origin.
    pub jwt_audience: Option<String>,
    /// How long an OAuth `state` (and its PKCE verifier) may wait for the provider's callback.
    pub oauth_flow_ttl_secs: u64,
    /// Timeout of every call to a provider (token, revoke, identity).
    pub provider_timeout_secs: u64,
    pub refresh: RefreshConfig,
}

/// `[connectors.refresh]`: keeping stored access tokens fresh.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshConfig {
    /// Refresh when less than this remains of an access token's life.
    pub margin_secs: u64,
    /// Run the periodic sweep in this process.
    pub sweep_enabled: bool,
    /// Mean pause between sweeps; each pause is jittered by ±20 %.
    pub sweep_interval_secs: u64,
    /// Most connections one sweep refreshes.
    pub sweep_batch: u32,
    /// Transient failures back off exponentially from 30 s up to this.
    pub max_backoff_secs: u64,
}

/// `[connectors.providers.*]`: which providers users may connect, and where they live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    pub linear: LinearProviderConfig,
    pub github: GithubProviderConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinearActor {
    User,
    App,
}

impl LinearActor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::App => "app",
        }
    }
}

/// Linear OAuth (spec §1). Offered to users once `client_id` and `client_secret` are set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearProviderConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: String,
    pub graphql_url: String,
    /// Scopes asked for when the client names none.
    pub scopes: Vec<String>,
    /// `actor=user` (actions appear as the user's) or `actor=app` (agents, service accounts).
    pub actor: LinearActor,
    /// `prompt` on the authorize URL; `consent` lets one user connect several workspaces.
    pub prompt: Option<String>,
}

/// GitHub OAuth app (spec §3), the second provider that proves the registry is generic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubProviderConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub authorize_url: String,
    pub token_url: String,
    /// `{client_id}` in it is replaced; GitHub revokes with `DELETE` and Basic auth.
    pub revoke_url: String,
    /// REST API base: `GET <api_url>/user` names the account.
    pub api_url: String,
    pub scopes: Vec<String>,
}

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

impl Config {
    /// Loads the layers from `config_dir` and `env` (the process environment in `main`, a map of
    /// the test's choosing in tests). Validation is separate: see [`Config::validate`].
    pub fn load(env: &HashMap<String, String>, config_dir: &Path) -> Result<Self, ConfigError> {
        let app_env = AppEnv::parse(env.get("APP_ENV").map(String::as_str))?;
        let env: HashMap<String, String> = env
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        let mut switchboard_env = config::Environment::with_prefix("SWITCHBOARD")
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
            switchboard_env = switchboard_env.with_list_parse_key(key);
        }

        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(
                BUILT_IN_DEFAULTS,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from(config_dir.join("default.toml")).required(false))
            .add_source(
                config::File::from(config_dir.join(format!("{}.toml", app_env.as_str())))
                    .required(false),
            )
            .add_source(switchboard_env);

        for (name, key) in LEGACY_ENV {
            let Some(value) = env.get(*name) else {
                continue;
            };
            builder = if LIST_KEYS.contains(key) {
                builder.set_override(*key, split_list(value))
            } else {
                builder.set_override(*key, value.as_str())
            }
            .map_err(|e| ConfigError::Load(format!("{name}: {e}")))?;
        }
        let built = builder
            .set_override("app_env", app_env.as_str())
            .and_then(|b| b.build())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        built
            .try_deserialize::<Config>()
            .map_err(|e| ConfigError::Load(e.to_string()))
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
            problems.push("database.pool_max_size must be at least 1".to_owned());
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

        if needs_auth {
            self.validate_auth(&mut problems, production);
        }
        if needs_connectors {
            self.validate_connectors(&mut problems, production);
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn validate_auth(&self, problems: &mut Vec<String>, production: bool) {
        let auth = &self.auth;
        match base_url(&auth.base_url) {
            Err(why) => problems.push(format!("BETTER_AUTH_URL {why}")),
            Ok(url) if production && url.scheme() != "https" => {
                problems.push("BETTER_AUTH_URL must be https in production".to_owned())
            }
            Ok(_) => {}
        }
        let secret_len = auth.secret.expose().chars().count();
        if secret_len < 32 {
            problems.push(format!(
                "BETTER_AUTH_SECRET must be at least 32 characters (it has {secret_len})"
            ));
        }
        let jwt_len = auth.jwt_secret.expose().chars().count();
        if jwt_len < 32 {
            problems.push(format!(
                "JWT_SECRET must be at least 32 characters (it has {jwt_len})"
            ));
        }
        if !auth.jwt_secret.is_empty() && auth.jwt_secret == auth.secret {
            problems.push("JWT_SECRET must differ from BETTER_AUTH_SECRET".to_owned());
        }
        if production {
            for (name, secret) in [
                ("BETTER_AUTH_SECRET", &auth.secret),
                ("JWT_SECRET", &auth.jwt_secret),
            ] {
                if is_dev_secret(secret) {
                    problems.push(format!(
                        "{name} is a development-only value; set a real secret in production"
                    ));
                }
            }
            if auth.secure_cookies == Some(false) {
                problems.push("auth.secure_cookies cannot be false in production".to_owned());
            }
        }
        let gh = &auth.github;
        check_pair(
            problems,
            "GITHUB",
            gh.client_id.as_deref(),
            gh.client_secret.as_ref(),
        );
        for (key, value) in [
            ("auth.github.authorize_url", &gh.authorize_url),
            ("auth.github.token_url", &gh.token_url),
            ("auth.github.api_url", &gh.api_url),
        ] {
            match base_url(value) {
                Err(why) => problems.push(format!("{key} {why}")),
                Ok(url) if production && url.scheme() != "https" => {
                    problems.push(format!("{key} must be https in production"))
                }
                Ok(_) => {}
            }
        }
        if gh
            .scopes
            .iter()
            .any(|s| s.trim().is_empty() || s.contains(' '))
        {
            problems.push("auth.github.scopes: each scope must be one non-empty word".to_owned());
        }
        let ep = &auth.email_and_password;
        if ep.min_password_length == 0 || ep.min_password_length > ep.max_password_length {
            problems.push(
                "auth.email_and_password: min_password_length must be between 1 and max_password_length"
                    .to_owned(),
            );
        }
        let s = &auth.session;
        if s.expires_in_secs <= 0 || s.update_age_secs < 0 || s.fresh_age_secs < 0 {
            problems.push("auth.session: durations must be positive".to_owned());
        }
        validate_jwt(problems, &auth.jwt);
        if auth.trusted_origins.iter().any(|o| o.trim().is_empty()) {
            problems.push("BETTER_AUTH_TRUSTED_ORIGINS has an empty entry".to_owned());
        }
        auth.rate_limit.check(problems);
        self.validate_mail(problems, production);
    }

    fn validate_mail(&self, problems: &mut Vec<String>, production: bool) {
        let auth = &self.auth;
        let mail = &auth.mail;
        let transport = mail.effective_transport(auth.resend_api_key.as_ref());
        let has_key = auth.resend_api_key.as_ref().is_some_and(|k| !k.is_empty());
        if mail.transport == MailTransport::Resend && !has_key {
            problems.push("auth.mail.transport is resend but RESEND_API_KEY is not set".to_owned());
        }
        if production && auth.sends_mail() && transport != MailTransport::Resend {
            problems.push(
                "RESEND_API_KEY must be set in production while email verification or password \
                 reset is enabled (or disable both)"
                    .to_owned(),
            );
        }
        if let Err(why) = http_url(&mail.resend_base_url) {
            problems.push(format!("auth.mail.resend_base_url {why}"));
        }
        if !is_mailbox(&mail.from) {
            problems.push(format!(
                "auth.mail.from must be an address or `Name <address>` (got {:?})",
                mail.from
            ));
        }
        if let Some(reply_to) = &mail.reply_to
            && !is_mailbox(reply_to)
        {
            problems.push(format!(
                "auth.mail.reply_to must be an address or `Name <address>` (got {reply_to:?})"
            ));
        }
        if mail.product_name.trim().is_empty() {
            problems.push("auth.mail.product_name must not be empty".to_owned());
        }
        if mail.timeout_ms == 0 || mail.connect_timeout_ms == 0 {
            problems.push("auth.mail: timeouts must be positive".to_owned());
        }
        if auth.email_verification.expires_in_secs <= 0
            || auth.password_reset.token_expires_in_secs <= 0
        {
            problems.push(
                "auth.email_verification.expires_in_secs and \
                 auth.password_reset.token_expires_in_secs must be positive"
                    .to_owned(),
            );
        }
    }

    fn validate_connectors(&self, problems: &mut Vec<String>, production: bool) {
        let c = &self.connectors;
        match base_url(&c.public_url) {
            Err(why) => problems.push(format!("CONNECTORS_URL {why}")),
            Ok(url) if production && url.scheme() != "https" => {
                problems.push("CONNECTORS_URL must be https in production".to_owned())
            }
            Ok(_) => {}
        }
        if let Err(why) = http_url(&c.jwks_url) {
            problems.push(format!("AUTH_JWKS_URL {why}"));
        }
        let key_len = c.encryption_key.expose().len();
        if key_len != 32 {
            problems.push(format!(
                "ENCRYPTION_KEY must be exactly 32 bytes (it has {key_len})"
            ));
        }
        if production && is_dev_secret(&c.encryption_key) {
            problems.push(
                "ENCRYPTION_KEY is a development-only value; set a real key in production"
                    .to_owned(),
            );
        }
        self.validate_encryption_keys(problems);
        validate_providers(problems, &c.providers, production);
        let r = &c.refresh;
        if r.margin_secs < 60 || r.margin_secs > 86_400 {
            problems.push("connectors.refresh.margin_secs must be between 60 and 86400".to_owned());
        }
        if r.sweep_interval_secs < 5 {
            problems.push("connectors.refresh.sweep_interval_secs must be at least 5".to_owned());
        }
        if r.sweep_batch == 0 || r.sweep_batch > 1000 {
            problems.push("connectors.refresh.sweep_batch must be between 1 and 1000".to_owned());
        }
        if r.max_backoff_secs < 30 {
            problems.push("connectors.refresh.max_backoff_secs must be at least 30".to_owned());
        }
        if !(60..=3600).contains(&c.oauth_flow_ttl_secs) {
            problems.push("connectors.oauth_flow_ttl_secs must be between 60 and 3600".to_owned());
        }
        if !(1..=60).contains(&c.provider_timeout_secs) {
            problems.push("connectors.provider_timeout_secs must be between 1 and 60".to_owned());
        }
        for (name, value) in [
            ("connectors.jwt_issuer", &c.jwt_issuer),
            ("connectors.jwt_audience", &c.jwt_audience),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push(format!("{name} must not be empty when set"));
            }
        }
        if c.jwt_issuer.is_none() || c.jwt_audience.is_none() {
            // The default comes from BETTER_AUTH_URL, so it must be a URL even without the auth role.
            if let Err(why) = base_url(&self.auth.base_url) {
                problems.push(format!(
                    "BETTER_AUTH_URL {why} (connectors derive the expected JWT issuer/audience from it; \
                     or set connectors.jwt_issuer and connectors.jwt_audience)"
                ));
            }
        }
    }

    fn validate_encryption_keys(&self, problems: &mut Vec<String>) {
        let c = &self.connectors;
        if c.encryption_key_version == 0 {
            problems.push("connectors.encryption_key_version must be at least 1".to_owned());
        }
        match self.previous_encryption_keys() {
            Err(mut found) => problems.append(&mut found),
            Ok(keys) => {
                if keys.iter().any(|(v, _)| *v == c.encryption_key_version) {
                    problems.push(
                        "connectors.previous_encryption_keys must not repeat encryption_key_version"
                            .to_owned(),
                    );
                }
            }
        }
    }

    /// `connectors.previous_encryption_keys` parsed into (version, key bytes); every malformed
    /// entry is reported by its position, never by its value.
    pub fn previous_encryption_keys(&self) -> Result<Vec<(u32, Vec<u8>)>, Vec<String>> {
        let mut keys: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut problems = Vec::new();
        for (i, entry) in self.connectors.previous_encryption_keys.iter().enumerate() {
            let parsed = entry.expose().split_once(':').and_then(|(v, k)| {
                let v = v.trim().parse::<u32>().ok().filter(|v| *v > 0)?;
                (k.len() == 32).then(|| (v, k.as_bytes().to_vec()))
            });
            match parsed {
                Some((v, _)) if keys.iter().any(|(seen, _)| *seen == v) => problems.push(format!(
                    "connectors.previous_encryption_keys entry {} repeats version {v}",
                    i + 1
                )),
                Some(pair) => keys.push(pair),
                None => problems.push(format!(
                    "connectors.previous_encryption_keys entry {} must be \"<version>:<exactly 32 bytes>\"",
                    i + 1
                )),
            }
        }
        if problems.is_empty() {
            Ok(keys)
        } else {
            Err(problems)
        }
    }

    /// The `iss` the auth role writes into its JWTs.
    pub fn auth_jwt_issuer(&self) -> String {
        self.auth
            .jwt
            .issuer
            .clone()
            .unwrap_or_else(|| url_origin(&self.auth.base_url))
    }

    /// The `aud` the auth role writes into its JWTs.
    pub fn auth_jwt_audience(&self) -> String {
        self.auth
            .jwt
            .audience
            .clone()
            .unwrap_or_else(|| url_origin(&self.auth.base_url))
    }

    /// The `iss` the connectors role requires.
    pub fn connectors_jwt_issuer(&self) -> String {
        self.connectors
            .jwt_issuer
            .clone()
            .unwrap_or_else(|| url_origin(&self.auth.base_url))
    }

    /// The `aud` the connectors role requires.
    pub fn connectors_jwt_audience(&self) -> String {
        self.connectors
            .jwt_audience
            .clone()
            .unwrap_or_else(|| url_origin(&self.auth.base_url))
    }

    /// Whether auth cookies carry `Secure` and the `__Secure-` prefix (Better Auth's rule).
    pub fn secure_cookies(&self) -> bool {
        self.auth
            .secure_cookies
            .unwrap_or_else(|| self.auth.base_url.starts_with("https://"))
    }
}

/// `scheme://host[:port]` of a URL (Better Auth's `options.baseURL`); the input itself when it
/// does not parse, which validation reports.
fn url_origin(value: &str) -> String {
    Url::parse(value)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| value.to_owned())
}

fn validate_jwt(problems: &mut Vec<String>, jwt: &JwtConfig) {
    const TEN_YEARS: u64 = 315_360_000;
    for (name, value) in [
        ("expires_in_secs", Some(jwt.expires_in_secs)),
        ("grace_period_secs", Some(jwt.grace_period_secs)),
        ("activation_delay_secs", Some(jwt.activation_delay_secs)),
        ("rotation_interval_secs", jwt.rotation_interval_secs),
    ] {
        if value.is_some_and(|v| v > TEN_YEARS) {
            problems.push(format!("auth.jwt.{name} must be at most ten years"));
        }
    }
    if jwt.expires_in_secs < 10 {
        problems.push("auth.jwt.expires_in_secs must be at least 10".to_owned());
    }
    if jwt.grace_period_secs < jwt.expires_in_secs {
        problems.push(
            "auth.jwt.grace_period_secs must be at least auth.jwt.expires_in_secs, or tokens \
             outlive their key in the JWKS"
                .to_owned(),
        );
    }
    if let Some(interval) = jwt.rotation_interval_secs
        && interval <= jwt.activation_delay_secs.max(jwt.expires_in_secs)
    {
        problems.push(
            "auth.jwt.rotation_interval_secs must exceed both auth.jwt.activation_delay_secs and \
             auth.jwt.expires_in_secs"
                .to_owned(),
        );
    }
    for (name, value) in [
        ("auth.jwt.issuer", &jwt.issuer),
        ("auth.jwt.audience", &jwt.audience),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(format!("{name} must not be empty when set"));
        }
    }
}

fn validate_providers(problems: &mut Vec<String>, p: &ProvidersConfig, production: bool) {
    check_pair(
        problems,
        "LINEAR",
        p.linear.client_id.as_deref(),
        p.linear.client_secret.as_ref(),
    );
    let has_id = p.github.client_id.as_deref().is_some_and(|s| !s.is_empty());
    let has_secret = p
        .github
        .client_secret
        .as_ref()
        .is_some_and(|s| !s.is_empty());
    if has_id != has_secret {
        problems.push(
            "connectors.providers.github.client_id and client_secret must be set together"
                .to_owned(),
        );
    }
    let l = &p.linear;
    let g = &p.github;
    let urls = [
        ("linear.authorize_url", &l.authorize_url),
        ("linear.token_url", &l.token_url),
        ("linear.revoke_url", &l.revoke_url),
        ("linear.graphql_url", &l.graphql_url),
        ("github.authorize_url", &g.authorize_url),
        ("github.token_url", &g.token_url),
        ("github.revoke_url", &g.revoke_url),
        ("github.api_url", &g.api_url),
    ];
    for (name, value) in urls {
        match http_url(value) {
            Err(why) => problems.push(format!("connectors.providers.{name} {why}")),
            Ok(url) if production && url.scheme() != "https" => problems.push(format!(
                "connectors.providers.{name} must be https in production"
            )),
            Ok(_) => {}
        }
    }
    for (name, scopes) in [("linear", &l.scopes), ("github", &g.scopes)] {
        if scopes.iter().any(|s| !valid_scope(s)) {
            problems.push(format!(
                "connectors.providers.{name}.scopes has an empty or malformed entry"
            ));
        }
    }
    if l.actor == LinearActor::App && l.scopes.iter().any(|s| s == "admin") {
        problems.push(
            "connectors.providers.linear: actor=app cannot be combined with the admin scope"
                .to_owned(),
        );
    }
}

/// An OAuth scope token (RFC 6749 §3.3) without the separators providers use between scopes.
pub fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 100
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'"' | b'\\'))
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_dev_secret(secret: &Secret) -> bool {
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

fn check_pair(
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

fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL with a host".to_owned());
    }
    Ok(url)
}

/// A public base URL: http(s), a host, no query or fragment.
fn base_url(value: &str) -> Result<Url, String> {
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

fn is_mailbox(value: &str) -> bool {
    let value = value.trim();
    let addr = match (value.rfind('<'), value.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => value,
        _ => return false,
    };
    matches!(addr.split_once('@'), Some((local, host)) if !local.is_empty() && host.contains('.') && !addr.contains(char::is_whitespace))
}
