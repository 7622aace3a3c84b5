//! The provider registry: which third-party services a user can connect, built from
//! configuration. A provider is data (URLs, scopes, how scopes are joined, extra authorize
//! parameters); only naming the account and revoking differ per provider, one file each.

mod github;
mod linear;

use crate::connectors::oauth::TokenError;
use crate::connectors::vault::Plain;
use crate::platform::config::ProvidersConfig;
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

/// The providers that are configured (client id and secret set), in a stable order.
#[derive(Debug, Default)]
pub struct Registry {
    providers: Vec<Arc<Provider>>,
}

impl Registry {
    pub fn from_config(config: &ProvidersConfig) -> Self {
        let providers = [
            linear::provider(&config.linear),
            github::provider(&config.github),
        ]
        .into_iter()
        .flatten()
        .map(Arc::new)
        .collect();
        Self { providers }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers.iter().find(|p| p.id == id).cloned()
    }

    pub fn all(&self) -> &[Arc<Provider>] {
        &self.providers
    }
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
