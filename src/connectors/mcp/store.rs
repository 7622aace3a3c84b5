//! Queries on the MCP tables. Every lookup of a server takes its owner, so another user's
//! server is "not found".

use super::models::{AuthFlowRow, CallRecord, CredentialRow, OAuthClientRow, ServerRow};
use crate::db::ids::UserId;
use crate::db::schema::{mcp_auth_flows, mcp_credentials, mcp_oauth_clients, mcp_servers};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

pub fn list_for_owner(conn: &mut PgConnection, owner: &UserId) -> QueryResult<Vec<ServerRow>> {
    mcp_servers::table
        .filter(mcp_servers::owner_id.eq(owner))
        .order((mcp_servers::created_at.asc(), mcp_servers::id.asc()))
        .select(ServerRow::as_select())
        .load(conn)
}

pub fn find_for_owner(
    conn: &mut PgConnection,
    id: &str,
    owner: &UserId,
) -> QueryResult<Option<ServerRow>> {
    mcp_servers::table
        .filter(mcp_servers::id.eq(id))
        .filter(mcp_servers::owner_id.eq(owner))
        .select(ServerRow::as_select())
        .first(conn)
        .optional()
}

pub fn count_for_owner(conn: &mut PgConnection, owner: &UserId) -> QueryResult<i64> {
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

pub fn delete_for_owner(conn: &mut PgConnection, id: &str, owner: &UserId) -> QueryResult<usize> {
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

/// Inserts tool-call records in one statement, their columns as arrays: the statement text is
/// the same for any number of records, so it is prepared once per connection (a multi-row
/// `VALUES` insert is parsed and planned anew for every batch).
pub fn record_calls(conn: &mut PgConnection, records: &[CallRecord]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Bool, Integer, Jsonb, Nullable, Text, Timestamptz};
    let column = |f: fn(&CallRecord) -> &str| records.iter().map(f).collect::<Vec<_>>();
    crate::db::prepared(
        "INSERT INTO mcp_tool_calls \
             (owner_id, server_id, tool, started_at, duration_ms, ok, error, arguments, result) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
             $5::int[], $6::bool[], $7::text[], $8::jsonb[], $9::jsonb[])",
    )
    .bind::<Array<Text>, _>(column(|r| r.owner_id.as_str()))
    .bind::<Array<Text>, _>(column(|r| &r.server_id))
    .bind::<Array<Text>, _>(column(|r| &r.tool))
    .bind::<Array<Timestamptz>, _>(records.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(records.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(records.iter().map(|r| r.ok).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        records
            .iter()
            .map(|r| r.error.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Jsonb>>, _>(
        records
            .iter()
            .map(|r| r.arguments.as_ref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Jsonb>>, _>(
        records
            .iter()
            .map(|r| r.result.as_ref())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .map(drop)
}

/// The owner's most recently updated active connection of a provider (for a catalog entry).
pub fn active_connection(
    conn: &mut PgConnection,
    owner: &UserId,
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

pub fn url_taken(conn: &mut PgConnection, owner: &UserId, url: &str) -> QueryResult<bool> {
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

// --- authorization (spec §5.5) ---

pub fn insert_flow(conn: &mut PgConnection, flow: &AuthFlowRow) -> QueryResult<()> {
    diesel::insert_into(mcp_auth_flows::table)
        .values(flow)
        .execute(conn)
        .map(|_| ())
}

/// Marks the flow used and returns it, unless it was used already (single use).
pub fn claim_flow(
    conn: &mut PgConnection,
    state_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<AuthFlowRow>> {
    diesel::update(
        mcp_auth_flows::table
            .filter(mcp_auth_flows::state_hash.eq(state_hash))
            .filter(mcp_auth_flows::consumed_at.is_null()),
    )
    .set(mcp_auth_flows::consumed_at.eq(now))
    .returning(AuthFlowRow::as_returning())
    .get_result(conn)
    .optional()
}

/// Authorization flows whose state expired before `before` (used or not): kept until then so a
/// replayed callback gets a clear answer, then deleted by the refresh sweep.
pub fn delete_stale_flows(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(mcp_auth_flows::table.filter(mcp_auth_flows::expires_at.lt(before)))
        .execute(conn)
}

pub fn find_flow(conn: &mut PgConnection, state_hash: &str) -> QueryResult<Option<AuthFlowRow>> {
    mcp_auth_flows::table
        .find(state_hash)
        .select(AuthFlowRow::as_select())
        .first(conn)
        .optional()
}

pub fn oauth_client(
    conn: &mut PgConnection,
    issuer: &str,
    redirect_uri: &str,
) -> QueryResult<Option<OAuthClientRow>> {
    mcp_oauth_clients::table
        .find((issuer, redirect_uri))
        .select(OAuthClientRow::as_select())
        .first(conn)
        .optional()
}

/// Keeps the first registration when two flows register at once; returns the one kept.
pub fn save_oauth_client(
    conn: &mut PgConnection,
    row: &OAuthClientRow,
) -> QueryResult<OAuthClientRow> {
    diesel::insert_into(mcp_oauth_clients::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)?;
    mcp_oauth_clients::table
        .find((&row.issuer, &row.redirect_uri))
        .select(OAuthClientRow::as_select())
        .first(conn)
}

/// Stores (or replaces) a server's credential and clears its "needs authorization" mark.
pub fn put_credential(conn: &mut PgConnection, cred: &CredentialRow) -> QueryResult<()> {
    conn.transaction(|c| {
        diesel::delete(mcp_credentials::table.find(&cred.server_id)).execute(c)?;
        diesel::insert_into(mcp_credentials::table)
            .values(cred)
            .execute(c)?;
        diesel::update(mcp_servers::table.find(&cred.server_id))
            .set((
                mcp_servers::needs_authorization.eq(false),
                mcp_servers::updated_at.eq(cred.updated_at),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// Adds scopes a server asked for (step-up) to the credential's wanted list.
pub fn want_scopes(
    conn: &mut PgConnection,
    server_id: &str,
    scopes: &[String],
) -> QueryResult<usize> {
    conn.transaction(|c| {
        let Some(cred) = credential(c, server_id)? else {
            return Ok(0);
        };
        let mut wanted: Vec<Option<String>> = cred.wanted_scopes;
        for s in scopes {
            if !wanted.iter().flatten().any(|w| w == s) {
                wanted.push(Some(s.clone()));
            }
        }
        diesel::update(mcp_credentials::table.find(server_id))
            .set(mcp_credentials::wanted_scopes.eq(wanted))
            .execute(c)
    })
}

/// Takes the refresh lease when the credential still holds `seen` and no live lease exists.
pub fn claim_refresh(
    conn: &mut PgConnection,
    server_id: &str,
    seen: &str,
    claim: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        mcp_credentials::table
            .filter(mcp_credentials::server_id.eq(server_id))
            .filter(mcp_credentials::access_token.eq(seen))
            .filter(
                mcp_credentials::refresh_claim
                    .is_null()
                    .or(mcp_credentials::refresh_claim_expires_at.le(now)),
            ),
    )
    .set((
        mcp_credentials::refresh_claim.eq(claim),
        mcp_credentials::refresh_claim_expires_at.eq(until),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

diesel::define_sql_function!(fn coalesce(x: Nullable<Text>, y: Nullable<Text>) -> Nullable<Text>);

/// Writes a refresh's result, only while our lease is still the row's. `refresh: None` (the
/// server sent no new refresh token) keeps the stored one as it is now, not as this refresh
/// read it: a key rotation may have re-sealed it meanwhile.
pub fn finish_refresh(
    conn: &mut PgConnection,
    server_id: &str,
    claim: &str,
    access: &str,
    refresh: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        mcp_credentials::table
            .filter(mcp_credentials::server_id.eq(server_id))
            .filter(mcp_credentials::refresh_claim.eq(claim)),
    )
    .set((
        mcp_credentials::access_token.eq(access),
        mcp_credentials::refresh_token.eq(coalesce(refresh, mcp_credentials::refresh_token)),
        mcp_credentials::expires_at.eq(expires_at),
        mcp_credentials::refresh_claim.eq(None::<String>),
        mcp_credentials::refresh_claim_expires_at.eq(None::<DateTime<Utc>>),
        mcp_credentials::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// The refresh token is no good: drop the credential and mark the server for authorization.
pub fn drop_credential(
    conn: &mut PgConnection,
    server_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|c| {
        diesel::delete(mcp_credentials::table.find(server_id)).execute(c)?;
        diesel::update(mcp_servers::table.find(server_id))
            .set((
                mcp_servers::needs_authorization.eq(true),
                mcp_servers::updated_at.eq(now),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// Gives a refresh lease back after a failed attempt (only if it is still ours).
pub fn release_refresh(
    conn: &mut PgConnection,
    server_id: &str,
    claim: &str,
) -> QueryResult<usize> {
    diesel::update(
        mcp_credentials::table
            .filter(mcp_credentials::server_id.eq(server_id))
            .filter(mcp_credentials::refresh_claim.eq(claim)),
    )
    .set((
        mcp_credentials::refresh_claim.eq(None::<String>),
        mcp_credentials::refresh_claim_expires_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
}

/// The server answered 401 to the credential we hold: the user must authorize it again.
pub fn mark_needs_authorization(
    conn: &mut PgConnection,
    id: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        mcp_servers::table
            .find(id)
            .filter(mcp_servers::needs_authorization.eq(false)),
    )
    .set((
        mcp_servers::needs_authorization.eq(true),
        mcp_servers::updated_at.eq(now),
    ))
    .execute(conn)
}
