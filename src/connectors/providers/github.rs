//! GitHub OAuth apps (spec §3): PKCE S256, the account named by `GET /user`, revocation by
//! `DELETE /applications/{client_id}/token`. OAuth-app tokens do not expire; GitHub App user
//! tokens do and carry a refresh token, which the generic refresh handles.

use super::{Identity, Provider, ProviderKind, client_pair, status_error, transport};
use crate::connectors::config::GithubProviderConfig;
use crate::connectors::oauth::TokenError;
use crate::connectors::vault::Plain;
use serde_json::{Value, json};

const API_VERSION: &str = "2022-11-28";

pub(super) fn provider(config: &GithubProviderConfig) -> Option<Provider> {
    let (client_id, client_secret) = client_pair(&config.client_id, &config.client_secret)?;
    Some(Provider {
        id: "github",
        name: "GitHub",
        kind: ProviderKind::Github,
        revoke_url: config.revoke_url.replace("{client_id}", &client_id),
        client_id,
        client_secret,
        authorize_url: config.authorize_url.clone(),
        token_url: config.token_url.clone(),
        api_url: config.api_url.trim_end_matches('/').to_owned(),
        default_scopes: config.scopes.clone(),
        scope_separator: " ",
        authorize_params: Vec::new(),
        actor: None,
    })
}

pub(super) async fn identity(
    http: &reqwest::Client,
    provider: &Provider,
    token: &Plain,
) -> Result<Identity, TokenError> {
    let response = http
        .get(format!("{}/user", provider.api_url))
        .bearer_auth(token.expose())
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(status_error(status));
    }
    let user: Value = response.json().await.map_err(|_| TokenError::Malformed)?;
    let id = match user.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(TokenError::Malformed),
    };
    let text = |k: &str| user.get(k).and_then(Value::as_str).map(str::to_owned);
    let login = text("login").unwrap_or_else(|| id.clone());
    Ok(Identity {
        account_id: id.clone(),
        org_id: None,
        display_name: login.clone(),
        details: json!({
            "user": {
                "id": id,
                "login": login,
                "name": text("name"),
                "email": text("email"),
                "avatar_url": text("avatar_url"),
            },
        }),
    })
}

/// 204 revoked; 404 and 422 mean GitHub no longer knows the token.
pub(super) async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    access_token: &Plain,
) -> Result<(), TokenError> {
    let response = http
        .delete(&provider.revoke_url)
        .basic_auth(&provider.client_id, Some(provider.client_secret.expose()))
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
        .json(&json!({ "access_token": access_token.expose() }))
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    if status.is_success() || matches!(status.as_u16(), 404 | 422) {
        Ok(())
    } else {
        Err(status_error(status))
    }
}
