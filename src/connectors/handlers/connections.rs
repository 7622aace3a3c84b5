//! `GET /api/connections`, `GET|DELETE /api/connections/{id}`,
//! `POST /api/connections/{id}/refresh`.

use crate::connectors::error::ConnectorsError;
use crate::connectors::models::{ConnectionId, ConnectionView};
use crate::connectors::{ConnectorsState, refresh, service};
use crate::trust::Caller;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionList {
    connections: Vec<ConnectionView>,
}

/// The caller's connections, oldest first. Never a token.
#[utoipa::path(get, path = "/api/connections", tag = "connectors", operation_id = "list_connections",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's connections", body = ConnectionList),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn list(
    caller: Caller,
    state: web::Data<ConnectorsState>,
) -> Result<HttpResponse, ConnectorsError> {
    let rows = service::list(&state.ctx, &caller.id).await?;
    Ok(HttpResponse::Ok().json(ConnectionList {
        connections: rows.into_iter().map(Into::into).collect(),
    }))
}

/// One of the caller's connections; another user's is a 404.
#[utoipa::path(get, path = "/api/connections/{id}", tag = "connectors",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such connection of the caller's", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn get(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConnectorsError> {
    let row = service::get(&state.ctx, &caller.id, &ConnectionId(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(ConnectionView::from(row)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct DeleteQuery {
    /// Delete even if the provider cannot revoke the grant right now.
    #[serde(default)]
    force: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeletedBody {
    id: String,
    deleted: bool,
    /// Whether the provider confirmed the grant is gone (false only with `force`).
    revoked: bool,
}

/// Revokes the grant at the provider, then deletes the connection.
#[utoipa::path(delete, path = "/api/connections/{id}", tag = "connectors",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Connection id"), DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = DeletedBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such connection of the caller's", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The provider could not revoke; the connection is kept", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn delete(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ConnectorsError> {
    let id = ConnectionId(id.into_inner());
    let revoked = service::disconnect(&state.ctx, &caller.id, &id, query.force).await?;
    Ok(HttpResponse::Ok().json(DeletedBody {
        id: id.0,
        deleted: true,
        revoked,
    }))
}

/// Refreshes the access token now (rotating the refresh token). Concurrent calls make one
/// provider call.
#[utoipa::path(post, path = "/api/connections/{id}/refresh", tag = "connectors",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "Refreshed", body = ConnectionView),
        (status = 400, description = "The connection has no refresh token", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such connection of the caller's", body = crate::platform::error::ErrorBody),
        (status = 409, description = "The provider refused the grant: reconnect", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The provider failed", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn refresh(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConnectorsError> {
    let row = refresh::refresh_now(&state.ctx, &caller.id, &ConnectionId(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(ConnectionView::from(row)))
}
