//! Linear (spec §1): OAuth with PKCE and rotating refresh tokens, the account named by GraphQL
//! `viewer` + `organization`, and revocation of both tokens.

use super::{Identity, Provider, ProviderKind, client_pair, status_error, transport};
use crate::connectors::config::LinearProviderConfig;
use crate::connectors::oauth::TokenError;
use crate::connectors::vault::Plain;
use serde_json::{Value, json};

const IDENTITY_QUERY: &str = "query SwitchboardIdentity { viewer { id name email displayName } organization { id name urlKey } }";

pub(super) fn provider(config: &LinearProviderConfig) -> Option<Provider> {
    let (client_id, client_secret) = client_pair(&config.client_id, &config.client_secret)?;
    let actor = config.actor.as_str();
    let mut authorize_params = vec![("actor".to_owned(), actor.to_owned())];
    if let Some(prompt) = config.prompt.as_deref().filter(|p| !p.is_empty()) {
        authorize_params.push(("prompt".to_owned(), prompt.to_owned()));
    }
    Some(Provider {
        id: "linear",
        name: "Linear",
        kind: ProviderKind::Linear,
        client_id,
        client_secret,
        authorize_url: config.authorize_url.clone(),
        token_url: config.token_url.clone(),
        revoke_url: config.revoke_url.clone(),
        api_url: config.graphql_url.clone(),
        default_scopes: config.scopes.clone(),
        scope_separator: ",",
        authorize_params,
        actor: Some(actor),
    })
}

pub(super) async fn identity(
    http: &reqwest::Client,
    provider: &Provider,
    token: &Plain,
) -> Result<Identity, TokenError> {
    let response = http
        .post(&provider.api_url)
        .bearer_auth(token.expose())
        .json(&json!({ "query": IDENTITY_QUERY }))
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|_| TokenError::Malformed)?;
    if let Some(errors) = body.get("errors").and_then(Value::as_array)
        && !errors.is_empty()
    {
        // Rate limiting comes as HTTP 400 with RATELIMITED (spec §1.5).
        let limited = errors
            .iter()
            .any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some("RATELIMITED"));
        return Err(if limited {
            TokenError::Transient("rate limited".to_owned())
        } else if !status.is_success() {
            status_error(status)
        } else {
            TokenError::Rejected("graphql_error".to_owned())
        });
    }
    if !status.is_success() {
        return Err(status_error(status));
    }
    let viewer = body.pointer("/data/viewer").ok_or(TokenError::Malformed)?;
    let org = body
        .pointer("/data/organization")
        .ok_or(TokenError::Malformed)?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let viewer_id = text(viewer, "id").ok_or(TokenError::Malformed)?;
    let org_id = text(org, "id").ok_or(TokenError::Malformed)?;
    let org_name = text(org, "name").unwrap_or_else(|| org_id.clone());
    let display_name = match text(org, "urlKey") {
        Some(key) => format!("{org_name} ({key})"),
        None => org_name.clone(),
    };
    Ok(Identity {
        account_id: viewer_id.clone(),
        org_id: Some(org_id.clone()),
        display_name,
        details: json!({
            "actor": provider.actor,
            "viewer": {
                "id": viewer_id,
                "name": text(viewer, "name"),
                "display_name": text(viewer, "displayName"),
                "email": text(viewer, "email"),
            },
            "organization": {
                "id": org_id,
                "name": org_name,
                "url_key": text(org, "urlKey"),
            },
        }),
    })
}

/// Revokes the refresh token, then the access token (the docs do not say whether one takes the
/// other with it). 400 means already revoked and 401 that the token no longer authenticates:
/// both leave nothing to revoke.
pub(super) async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    access_token: &Plain,
    refresh_token: Option<&Plain>,
) -> Result<(), TokenError> {
    let mut tokens = Vec::new();
    if let Some(refresh) = refresh_token {
        tokens.push((refresh, "refresh_token"));
    }
    tokens.push((access_token, "access_token"));
    for (token, hint) in tokens {
        let response = http
            .post(&provider.revoke_url)
            .form(&[("token", token.expose()), ("token_type_hint", hint)])
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !(status.is_success() || status.as_u16() == 400 || status.as_u16() == 401) {
            return Err(status_error(status));
        }
    }
    Ok(())
}
