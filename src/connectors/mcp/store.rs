//! Queries on the MCP tables. Every lookup of a server takes its owner, so another user's
//! server is "not found".

use super::models::{CallRecord, CredentialRow, ServerRow};
use crate::db::schema::{mcp_credentials, mcp_servers, mcp_tool_calls};
use diesel::prelude::*;

pub fn list_for_owner(conn: &mut PgConnection, owner: &str) -> QueryResult<Vec<ServerRow>> {
    mcp_servers::table
        .filter(mcp_servers::owner_id.eq(owner))
        .order((mcp_servers::created_at.asc(), mcp_servers::id.asc()))
        .select(ServerRow::as_select())
        .load(conn)
}

pub fn find_for_owner(
    conn: &mut PgConnection,
    id: &str,
    owner: &str,
) -> QueryResult<Option<ServerRow>> {
    mcp_servers::table
        .filter(mcp_servers::id.eq(id))
        .filter(mcp_servers::owner_id.eq(owner))
        .select(ServerRow::as_select())
        .first(conn)
        .optional()
}

pub fn count_for_owner(conn: &mut PgConnection, owner: &str) -> QueryResult<i64> {
    mcp_servers::table
        .filter(mcp_servers::owner_id.eq(owner))
        .count()
        .get_result(conn)
}

/// Inserts the server and, when given, its sealed credential, in one transaction.
pub fn insert(
    conn: &mut PgConnection,
    row: &ServerRow,
    credential: Option<&CredentialRow>,
) -> QueryResult<()> {
    conn.transaction(|c| {
        diesel::insert_into(mcp_servers::table)
            .values(row)
            .execute(c)?;
        if let Some(cred) = credential {
            diesel::insert_into(mcp_credentials::table)
                .values(cred)
                .execute(c)?;
        }
        Ok(())
    })
}

pub fn delete_for_owner(conn: &mut PgConnection, id: &str, owner: &str) -> QueryResult<usize> {
    diesel::delete(
        mcp_servers::table
            .filter(mcp_servers::id.eq(id))
            .filter(mcp_servers::owner_id.eq(owner)),
    )
    .execute(conn)
}

pub fn credential(conn: &mut PgConnection, server_id: &str) -> QueryResult<Option<CredentialRow>> {
    mcp_credentials::table
        .filter(mcp_credentials::server_id.eq(server_id))
        .select(CredentialRow::as_select())
        .first(conn)
        .optional()
}

/// Which of these servers have a stored credential.
pub fn with_credentials(conn: &mut PgConnection, ids: &[String]) -> QueryResult<Vec<String>> {
    mcp_credentials::table
        .filter(mcp_credentials::server_id.eq_any(ids))
        .select(mcp_credentials::server_id)
        .load(conn)
}

pub fn record_call(conn: &mut PgConnection, record: &CallRecord) -> QueryResult<()> {
    diesel::insert_into(mcp_tool_calls::table)
        .values(record)
        .execute(conn)
        .map(|_| ())
}

/// The owner's most recently updated active connection of a provider (for a catalog entry).
pub fn active_connection(
    conn: &mut PgConnection,
    owner: &str,
    provider: &str,
) -> QueryResult<Option<String>> {
    use crate::db::schema::connections;
    connections::table
        .filter(connections::owner_id.eq(owner))
        .filter(connections::provider.eq(provider))
        .filter(connections::status.eq("active"))
        .order(connections::updated_at.desc())
        .select(connections::id)
        .first(conn)
        .optional()
}

pub fn url_taken(conn: &mut PgConnection, owner: &str, url: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        mcp_servers::table
            .filter(mcp_servers::owner_id.eq(owner))
            .filter(mcp_servers::url.eq(url)),
    ))
    .get_result(conn)
}

/// Keeps the row's era in step with what the client last detected.
pub fn set_era(
    conn: &mut PgConnection,
    id: &str,
    era: &str,
    version: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> QueryResult<usize> {
    diesel::update(mcp_servers::table.filter(mcp_servers::id.eq(id)))
        .set((
            mcp_servers::era.eq(era),
            mcp_servers::protocol_version.eq(version),
            mcp_servers::needs_authorization.eq(false),
            mcp_servers::updated_at.eq(now),
        ))
        .execute(conn)
}
