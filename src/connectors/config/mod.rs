//! The connectors role's configuration: `[connectors]` (the token vault's keys, refresh, OAuth
//! providers; `mcp`, `agents`) and `[webhooks]` (`webhooks`), and the checks `Config::validate`
//! runs for the connectors role. `platform::config` composes them into `Config`.

mod agents;
mod mcp;
mod webhooks;

pub use agents::*;
pub use mcp::*;
pub use webhooks::*;

use crate::platform::config::{Config, base_url, check_pair, http_url, is_dev_secret, url_origin};
use crate::platform::secret::Secret;
use serde::Deserialize;

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
    pub mcp: McpConfig,
    pub anthropic: AnthropicConfig,
    pub agents: AgentsConfig,
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
    /// Linear's hosted MCP server: a built-in catalog entry (`POST /api/mcp-servers {provider}`).
    pub mcp_url: Option<String>,
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
    /// GitHub's hosted MCP server: a built-in catalog entry.
    pub mcp_url: Option<String>,
}

impl Config {
    /// The connectors role's checks; `with_auth` when the auth role runs in the same process.
    pub(crate) fn validate_connectors(
        &self,
        problems: &mut Vec<String>,
        production: bool,
        with_auth: bool,
    ) {
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
        if let Some(problem) = encryption_key_problem(c.encryption_key.expose()) {
            problems.push(problem);
        }
        if production && is_dev_secret(&c.encryption_key) {
            problems.push(
                "ENCRYPTION_KEY is a development-only value; set a real key in production"
                    .to_owned(),
            );
        }
        self.validate_encryption_keys(problems);
        validate_providers(problems, &c.providers, production);
        self.validate_mcp(problems, production);
        self.validate_agents(problems, production);
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
            if let Err(why) = base_url(self.auth_base_url()) {
                problems.push(format!(
                    "BETTER_AUTH_URL {why} (connectors derive the expected JWT issuer/audience from it; \
                     or set connectors.jwt_issuer and connectors.jwt_audience)"
                ));
            }
        }
        self.webhooks.validate(problems, production);
        if !with_auth
            && !self.auth_base_url_set
            && (c.jwt_issuer.is_none() || c.jwt_audience.is_none())
        {
            problems.push(
                "the connectors role cannot know which JWT issuer and audience to expect: set \
                 BETTER_AUTH_URL to the auth role's public URL (as the auth role has it), or set \
                 both connectors.jwt_issuer and connectors.jwt_audience \
                 (SWITCHBOARD__CONNECTORS__JWT_ISSUER, SWITCHBOARD__CONNECTORS__JWT_AUDIENCE)"
                    .to_owned(),
            );
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

    /// The `iss` the connectors role requires.
    pub fn connectors_jwt_issuer(&self) -> String {
        self.connectors
            .jwt_issuer
            .clone()
            .unwrap_or_else(|| url_origin(self.auth_base_url()))
    }

    /// The `aud` the connectors role requires.
    pub fn connectors_jwt_audience(&self) -> String {
        self.connectors
            .jwt_audience
            .clone()
            .unwrap_or_else(|| url_origin(self.auth_base_url()))
    }
}

/// How to make a 32-byte key that is 32 printable characters: 24 random bytes in base64.
pub const ENCRYPTION_KEY_RECIPE: &str = "`openssl rand -base64 24` prints exactly 32 characters";

/// What is wrong with an `ENCRYPTION_KEY`, if anything. The 32 bytes are the AES-256 key as they
/// are (spec: raw, exactly 32 bytes), so base64 of 32 random bytes (44 characters) is refused
/// with a recipe rather than decoded: decoding would make a 44-character key mean something
/// else than in every other deployment of the original services.
fn encryption_key_problem(key: &str) -> Option<String> {
    use base64::Engine;
    let len = key.len();
    if len == 32 {
        return None;
    }
    if len == 0 {
        return Some(format!(
            "ENCRYPTION_KEY is not set; it must be exactly 32 bytes: {ENCRYPTION_KEY_RECIPE}"
        ));
    }
    let looks_base64 = base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|bytes| bytes.len() == 32);
    if looks_base64 {
        return Some(format!(
            "ENCRYPTION_KEY must be exactly 32 bytes; it has {len}, like the output of \
             `openssl rand -base64 32` (base64 is not decoded: the characters themselves are the key). \
             Use a 32-character value instead: {ENCRYPTION_KEY_RECIPE}"
        ));
    }
    Some(format!(
        "ENCRYPTION_KEY must be exactly 32 bytes (it has {len}): {ENCRYPTION_KEY_RECIPE}"
    ))
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
