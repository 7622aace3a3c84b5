//! The provider registry: which third-party services a user can connect, built from
//! configuration. A provider is data (URLs, scopes, how scopes are joined, extra authorize
//! parameters); only naming the account and revoking differ per provider, one file each.

mod github;
mod linear;

use crate::connectors::config::ProvidersConfig;
use crate::connectors::oauth::TokenError;
use crate::connectors::vault::Plain;
use crate::platform::secret::Secret;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Linear,
    Github,
}

/// One provider users may connect.
#[derive(Debug)]
pub struct Provider {
    /// URL segment and stored `connections.provider`.
    pub id: &'static str,
    pub name: &'static str,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Secret,
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: String,
    /// Where the account is named: Linear's GraphQL endpoint, GitHub's REST base.
    pub api_url: String,
    pub default_scopes: Vec<String>,
    /// Linear wants commas in the request, GitHub spaces.
    pub scope_separator: &'static str,
    /// Extra authorize parameters, e.g. Linear's `actor` and `prompt`.
    pub authorize_params: Vec<(String, String)>,
    /// Linear's `actor`, when the provider has the notion.
    pub actor: Option<&'static str>,
}

/// The account a token belongs to, as the provider names it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Unique per account at the provider (the connection's key with owner and provider).
    pub account_id: String,
    pub org_id: Option<String>,
    pub display_name: String,
    /// Display fields kept with the connection.
    pub details: Value,
}

/// A built-in provider this server cannot offer yet: its client id or secret is not set.
#[derive(Debug, Clone)]
pub struct Unconfigured {
    pub id: &'static str,
    pub name: &'static str,
    pub default_scopes: Vec<String>,
    pub actor: Option<&'static str>,
    /// The settings to set (environment names), never their values.
    pub missing: Vec<&'static str>,
}

impl Unconfigured {
    /// What to tell a client that tries to connect it.
    pub fn message(&self) -> String {
        format!(
            "{} is not configured on this server: set {}",
            self.name,
            self.missing.join(" and ")
        )
    }
}

/// A built-in provider, configured or not, in the registry's order.
#[derive(Debug, Clone)]
pub enum Listing<'a> {
    Configured(&'a Arc<Provider>),
    Unconfigured(&'a Unconfigured),
}

/// Every built-in provider: the configured ones (client id and secret set) can be connected,
/// the others are listed with the settings they lack. Stable order: Linear, GitHub.
#[derive(Debug, Default)]
pub struct Registry {
    providers: Vec<Arc<Provider>>,
    unconfigured: Vec<Unconfigured>,
    order: Vec<&'static str>,
}

impl Registry {
    pub fn from_config(config: &ProvidersConfig) -> Self {
        let mut registry = Self::default();
        let linear = &config.linear;
        registry.add(linear::provider(linear), || Unconfigured {
            id: "linear",
            name: "Linear",
            default_scopes: linear.scopes.clone(),
            actor: Some(linear.actor.as_str()),
            missing: missing(
                &linear.client_id,
                &linear.client_secret,
                "LINEAR_CLIENT_ID",
                "LINEAR_CLIENT_SECRET",
            ),
        });
        let github = &config.github;
        registry.add(github::provider(github), || Unconfigured {
            id: "github",
            name: "GitHub",
            default_scopes: github.scopes.clone(),
            actor: None,
            missing: missing(
                &github.client_id,
                &github.client_secret,
                "SWITCHBOARD__CONNECTORS__PROVIDERS__GITHUB__CLIENT_ID",
                "SWITCHBOARD__CONNECTORS__PROVIDERS__GITHUB__CLIENT_SECRET",
            ),
        });
        registry
    }

    fn add(&mut self, provider: Option<Provider>, otherwise: impl FnOnce() -> Unconfigured) {
        match provider {
            Some(p) => {
                self.order.push(p.id);
                self.providers.push(Arc::new(p));
            }
            None => {
                let u = otherwise();
                self.order.push(u.id);
                self.unconfigured.push(u);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers.iter().find(|p| p.id == id).cloned()
    }

    /// A built-in provider that is not configured, by id.
    pub fn unconfigured(&self, id: &str) -> Option<&Unconfigured> {
        self.unconfigured.iter().find(|u| u.id == id)
    }

    /// Every built-in provider, configured or not.
    pub fn listing(&self) -> Vec<Listing<'_>> {
        self.order
            .iter()
            .filter_map(|id| {
                self.providers
                    .iter()
                    .find(|p| p.id == *id)
                    .map(Listing::Configured)
                    .or_else(|| self.unconfigured(id).map(Listing::Unconfigured))
            })
            .collect()
    }
}

/// The names of the unset halves of a client id/secret pair.
fn missing(
    id: &Option<String>,
    secret: &Option<Secret>,
    id_name: &'static str,
    secret_name: &'static str,
) -> Vec<&'static str> {
    let mut names = Vec::new();
    if id.as_deref().is_none_or(str::is_empty) {
        names.push(id_name);
    }
    if secret.as_ref().is_none_or(Secret::is_empty) {
        names.push(secret_name);
    }
    names
}

/// Names the account `access_token` belongs to.
pub async fn identity(
    http: &reqwest::Client,
    provider: &Provider,
    access_token: &Plain,
) -> Result<Identity, TokenError> {
    match provider.kind {
        ProviderKind::Linear => linear::identity(http, provider, access_token).await,
        ProviderKind::Github => github::identity(http, provider, access_token).await,
    }
}

/// Withdraws the grant at the provider. Already revoked or unknown counts as done.
pub async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    access_token: &Plain,
    refresh_token: Option<&Plain>,
) -> Result<(), TokenError> {
    match provider.kind {
        ProviderKind::Linear => linear::revoke(http, provider, access_token, refresh_token).await,
        ProviderKind::Github => github::revoke(http, provider, access_token).await,
    }
}

/// A provider call's transport failure, without the URL (which may carry a client id).
fn transport(err: reqwest::Error) -> TokenError {
    if err.is_timeout() {
        TokenError::Transient("timeout".to_owned())
    } else {
        TokenError::Transient(err.without_url().to_string())
    }
}

/// Maps a non-success status of an API call.
fn status_error(status: reqwest::StatusCode) -> TokenError {
    if status.is_server_error() || status.as_u16() == 429 {
        TokenError::Transient(format!("HTTP {}", status.as_u16()))
    } else {
        TokenError::Rejected(format!("http_{}", status.as_u16()))
    }
}

fn client_pair(id: &Option<String>, secret: &Option<Secret>) -> Option<(String, Secret)> {
    let id = id.as_deref().filter(|s| !s.is_empty())?;
    let secret = secret.as_ref().filter(|s| !s.is_empty())?;
    Some((id.to_owned(), secret.clone()))
}
