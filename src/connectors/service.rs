//! Reading and removing a user's connections. Every lookup carries the caller's id, so another
//! user's connection is a 404, never a 403.

use crate::connectors::Ctx;
use crate::connectors::error::ConnectorsError;
use crate::connectors::models::{ConnectionId, ConnectionRow};
use crate::connectors::providers;
use crate::connectors::store;
use crate::connectors::vault::Field;
use crate::db;
use crate::db::ids::UserId;
use std::sync::Arc;

pub async fn list(ctx: &Arc<Ctx>, owner: &UserId) -> Result<Vec<ConnectionRow>, ConnectorsError> {
    let owner = owner.to_owned();
    Ok(db::query(&ctx.pool, move |c| store::list_for_owner(c, &owner)).await?)
}

pub async fn get(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    id: &ConnectionId,
) -> Result<ConnectionRow, ConnectorsError> {
    let (owner, id) = (owner.to_owned(), id.clone());
    db::query(&ctx.pool, move |c| store::find_for_owner(c, &id, &owner))
        .await?
        .ok_or(ConnectorsError::ConnectionNotFound)
}

/// Revokes the grant at the provider, then deletes the connection. If the provider cannot be
/// reached the connection stays (so nothing is left granted behind the user's back), unless
/// `force`, which deletes it anyway and says the grant may still be live.
pub async fn disconnect(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    id: &ConnectionId,
    force: bool,
) -> Result<bool, ConnectorsError> {
    let row = get(ctx, owner, id).await?;
    let revoked = match revoke(ctx, &row).await {
        Ok(()) => true,
        Err(err) if force => {
            tracing::warn!(connection_id = %row.id, provider = %row.provider, error = %err,
                "revoke failed; deleting anyway (force)");
            false
        }
        Err(err) => {
            tracing::warn!(connection_id = %row.id, provider = %row.provider, error = %err,
                "revoke failed; connection kept");
            return Err(err);
        }
    };
    let (owner, id) = (owner.to_owned(), id.clone());
    let deleted = db::query(&ctx.pool, move |c| store::delete_for_owner(c, &id, &owner)).await?;
    if deleted == 0 {
        return Err(ConnectorsError::ConnectionNotFound);
    }
    tracing::info!(connection_id = %row.id, provider = %row.provider, revoked, "connection deleted");
    Ok(revoked)
}

async fn revoke(ctx: &Arc<Ctx>, row: &ConnectionRow) -> Result<(), ConnectorsError> {
    let provider = ctx
        .registry
        .get(&row.provider)
        .ok_or(ConnectorsError::ProviderUnavailable)?;
    let access = ctx
        .vault
        .open(Field::AccessToken, &row.id, &row.access_token)?;
    let refresh = row
        .refresh_token
        .as_deref()
        .map(|sealed| ctx.vault.open(Field::RefreshToken, &row.id, sealed))
        .transpose()?;
    providers::revoke(&ctx.http, &provider, &access, refresh.as_ref())
        .await
        .map_err(ConnectorsError::from)
}
