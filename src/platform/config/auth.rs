//! The auth role's configuration: Better Auth's options, mail, rate limits, JWT keys, and the
//! checks `Config::validate` runs for the auth role.

use super::*;

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
    /// Better Auth's `disableSignUp`: GitHub signs in existing users only.
    pub disable_sign_up: bool,
    /// Better Auth's `disableImplicitSignUp`: a new user only when sign-in/social asked for it
    /// with `requestSignUp: true`.
    pub disable_implicit_sign_up: bool,
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
    /// Not Better Auth's: how long `get-session` answers a session it has just read from memory
    /// (`auth::session_cache`); 0 reads the database every time.
    pub cache_ttl_ms: u64,
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
    /// Where counts live: this process's memory, or PostgreSQL (shared by every auth process).
    #[serde(default)]
    pub storage: RateLimitStorage,
    /// Per-path overrides, checked before the built-in rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RateLimitRuleConfig>,
}

/// `auth.rate_limit.storage`: Better Auth's `"memory"` (the default; per process) or
/// `"database"` (its `rateLimit` table; exact across every process on the database).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStorage {
    #[default]
    Memory,
    Database,
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

/// How long downstream caches may keep the JWKS (`Cache-Control: max-age`).
pub const JWKS_MAX_AGE_SECS: u64 = 300;
/// How often an auth process re-reads the key set, so another process's rotation is seen.
pub const JWT_KEY_RELOAD_SECS: u64 = 30;

/// The JWT plugin: signing keys in the `jwks` table and the tokens signed with them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Algorithm of newly generated keys.
    pub alg: crate::crypto::Algorithm,
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
    /// How long a rotated-in key is published (first served in a JWKS) before it signs, so
    /// every JWKS cache that honours `Cache-Control` (and every auth process) has it before the
    /// first token naming it arrives. At least [`JWKS_MAX_AGE_SECS`] + [`JWT_KEY_RELOAD_SECS`].
    pub activation_delay_secs: u64,
}

impl Config {
    pub(super) fn validate_auth(&self, problems: &mut Vec<String>, production: bool) {
        let auth = &self.auth;
        match base_url(&auth.base_url) {
            Err(why) => problems.push(format!("BETTER_AUTH_URL {why}")),
            Ok(url) if production && url.scheme() != "https" => {
                problems.push("BETTER_AUTH_URL must be https in production".to_owned())
            }
            Ok(_) => {}
        }
        check_secret_length(problems, "BETTER_AUTH_SECRET", &auth.secret);
        check_secret_length(problems, "JWT_SECRET", &auth.jwt_secret);
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
                 reset is enabled (or turn both off: auth.email_verification.enabled = false and \
                 auth.password_reset.enabled = false, i.e. SWITCHBOARD__AUTH__EMAIL_VERIFICATION__ENABLED=false \
                 and SWITCHBOARD__AUTH__PASSWORD_RESET__ENABLED=false)"
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
}

/// A secret of at least 32 characters; an unset one is called unset, with a recipe.
fn check_secret_length(problems: &mut Vec<String>, name: &str, secret: &Secret) {
    let len = secret.expose().chars().count();
    if len == 0 {
        problems.push(format!(
            "{name} is not set; it needs at least 32 characters, e.g. `openssl rand -base64 32`"
        ));
    } else if len < 32 {
        problems.push(format!(
            "{name} must be at least 32 characters (it has {len}); e.g. `openssl rand -base64 32`"
        ));
    }
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
    // A key is first served by the process that reloads soonest; another process may serve
    // the old document for one more reload interval, and a verifier may keep that for max-age.
    let min_delay = JWKS_MAX_AGE_SECS + JWT_KEY_RELOAD_SECS;
    if jwt.activation_delay_secs < min_delay {
        problems.push(format!(
            "auth.jwt.activation_delay_secs is {}; it must be at least {min_delay} (the JWKS \
             max-age of {JWKS_MAX_AGE_SECS} s plus the key reload interval of \
             {JWT_KEY_RELOAD_SECS} s), or verifiers meet tokens from keys they have not fetched",
            jwt.activation_delay_secs
        ));
    }
    if let Some(interval) = jwt.rotation_interval_secs
        && interval
            <= jwt
                .activation_delay_secs
                .saturating_add(JWT_KEY_RELOAD_SECS)
                .max(jwt.expires_in_secs)
    {
        problems.push(
            "auth.jwt.rotation_interval_secs must exceed both auth.jwt.activation_delay_secs \
             plus the key reload interval (30 s) and auth.jwt.expires_in_secs"
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

fn is_mailbox(value: &str) -> bool {
    let value = value.trim();
    let addr = match (value.rfind('<'), value.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => value,
        _ => return false,
    };
    matches!(addr.split_once('@'), Some((local, host)) if !local.is_empty() && host.contains('.') && !addr.contains(char::is_whitespace))
}
