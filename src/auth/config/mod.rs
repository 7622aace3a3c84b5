//! The auth role's configuration (`[auth]`): Better Auth's options and the checks
//! `Config::validate` runs for the auth role; `platform::config` composes it into `Config`.
//! By concern: `mail` (transport, verification and reset mail), `rate_limit`
//! (`[auth.rate_limit]`), `jwt` (`[auth.jwt]`, signing keys).

mod jwt;
mod mail;
mod rate_limit;

pub use jwt::*;
pub use mail::*;
pub use rate_limit::*;

use crate::platform::config::{Config, base_url, check_pair, is_dev_secret, url_origin};
use crate::platform::secret::Secret;
use serde::Deserialize;

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

impl Config {
    pub(crate) fn validate_auth(&self, problems: &mut Vec<String>, production: bool) {
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

    /// Whether auth cookies carry `Secure` and the `__Secure-` prefix (Better Auth's rule).
    pub fn secure_cookies(&self) -> bool {
        self.auth
            .secure_cookies
            .unwrap_or_else(|| self.auth.base_url.starts_with("https://"))
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
