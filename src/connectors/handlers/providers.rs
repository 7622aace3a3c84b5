//! `GET /api/providers`: what a user can connect.

use crate::connectors::ConnectorsState;
use crate::connectors::connect::redirect_uri;
use crate::connectors::providers::Listing;
use crate::trust::Caller;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderView {
    /// The id used in URLs, e.g. `linear`.
    id: &'static str,
    name: &'static str,
    /// Whether users can connect it: its client id and secret are set on this server.
    configured: bool,
    /// When not configured: the settings (environment names) an operator must set. Never
    /// values.
    missing: Vec<&'static str>,
    auth_mode: &'static str,
    /// Scopes asked for when `authorize` names none.
    default_scopes: Vec<String>,
    /// Linear's `actor` (`user` or `app`); absent for providers without the notion.
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'static str>,
    /// Always `S256`.
    pkce: &'static str,
    /// The redirect URI to register at the provider.
    callback_url: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderList {
    providers: Vec<ProviderView>,
}

/// Every built-in provider, with whether it is configured on this server and, if not, which
/// settings are missing.
#[utoipa::path(get, path = "/api/providers", tag = "connectors", operation_id = "list_providers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Built-in providers; `configured` ones can be connected", body = ProviderList),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn list(_caller: Caller, state: web::Data<ConnectorsState>) -> HttpResponse {
    let ctx = &state.ctx;
    let providers = ctx
        .registry
        .listing()
        .into_iter()
        .map(|entry| match entry {
            Listing::Configured(p) => ProviderView {
                id: p.id,
                name: p.name,
                configured: true,
                missing: Vec::new(),
                auth_mode: "oauth2",
                default_scopes: p.default_scopes.clone(),
                actor: p.actor,
                pkce: "S256",
                callback_url: redirect_uri(ctx, p),
            },
            Listing::Unconfigured(u) => ProviderView {
                id: u.id,
                name: u.name,
                configured: false,
                missing: u.missing.clone(),
                auth_mode: "oauth2",
                default_scopes: u.default_scopes.clone(),
                actor: u.actor,
                pkce: "S256",
                // The same form `redirect_uri` writes: an operator registers it before the
                // provider is configured.
                callback_url: format!(
                    "{}/api/connections/{}/callback",
                    ctx.config.connectors.public_url.trim_end_matches('/'),
                    u.id
                ),
            },
        })
        .collect();
    HttpResponse::Ok().json(ProviderList { providers })
}
