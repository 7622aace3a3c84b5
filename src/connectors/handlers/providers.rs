//! `GET /api/providers`: what a user can connect.

use crate::connectors::ConnectorsState;
use crate::connectors::connect::redirect_uri;
use crate::trust::Caller;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderView {
    /// The id used in URLs, e.g. `linear`.
    id: &'static str,
    name: &'static str,
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

/// Providers configured on this server (client id and secret set).
#[utoipa::path(get, path = "/api/providers", tag = "connectors", operation_id = "list_providers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Connectable providers", body = ProviderList),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn list(_caller: Caller, state: web::Data<ConnectorsState>) -> HttpResponse {
    let ctx = &state.ctx;
    let providers = ctx
        .registry
        .all()
        .iter()
        .map(|p| ProviderView {
            id: p.id,
            name: p.name,
            auth_mode: "oauth2",
            default_scopes: p.default_scopes.clone(),
            actor: p.actor,
            pkce: "S256",
            callback_url: redirect_uri(ctx, p),
        })
        .collect();
    HttpResponse::Ok().json(ProviderList { providers })
}
