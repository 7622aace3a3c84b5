//! Queries on `connections` and `oauth_flows`, each taking `&mut PgConnection` so they compose
//! inside one transaction. A user's rows are always looked up with the user's id: another
//! user's connection is simply not found.

use crate::connectors::models::{ConnectionForm, ConnectionId, ConnectionRow, FlowRow, Status};
use crate::db::ids::UserId;
use crate::db::schema::{connections, oauth_flows, refresh_claims};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

pub fn list_for_owner(conn: &mut PgConnection, owner: &UserId) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::owner_id.eq(owner))
        .order((connections::created_at.asc(), connections::id.asc()))
        .select(ConnectionRow::as_select())
        .load(conn)
}

pub fn find_for_owner(
    conn: &mut PgConnection,
    id: &ConnectionId,
    owner: &UserId,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::id.eq(id))
        .filter(connections::owner_id.eq(owner))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut PgConnection, id: &ConnectionId) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .find(id)
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()
}

/// The row, locked until the transaction ends: the single-flight point of refresh.
pub fn lock(conn: &mut PgConnection, id: &ConnectionId) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .find(id)
        .select(ConnectionRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// The owner's connection to this account, locked, if there is one (reconnecting updates it).
pub fn lock_by_account(
    conn: &mut PgConnection,
    owner: &UserId,
    provider: &str,
    account_id: &str,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::owner_id.eq(owner))
        .filter(connections::provider.eq(provider))
        .filter(connections::external_account_id.eq(account_id))
        .select(ConnectionRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut PgConnection, form: &ConnectionForm) -> QueryResult<usize> {
    diesel::insert_into(connections::table)
        .values(form)
        .execute(conn)
}

/// Reconnect: fresh tokens, identity and status; the id, owner and creation time stay.
pub fn replace(conn: &mut PgConnection, form: &ConnectionForm) -> QueryResult<usize> {
    use connections as col;
    diesel::update(connections::table.find(&form.id))
        .set((
            col::external_org_id.eq(&form.external_org_id),
            col::display_name.eq(&form.display_name),
            col::account.eq(&form.account),
            col::scopes.eq(&form.scopes),
            col::status.eq(&form.status),
            col::access_token.eq(&form.access_token),
            col::refresh_token.eq(&form.refresh_token),
            col::expires_at.eq(form.expires_at),
            col::refresh_failures.eq(0),
            col::next_refresh_at.eq(None::<DateTime<Utc>>),
            col::updated_at.eq(form.updated_at),
        ))
        .execute(conn)?;
    // A refresh in flight holds the old grant: its write-back must not land.
    diesel::delete(refresh_claims::table.find(&form.id)).execute(conn)
}

/// The live claim on a connection's refresh, if any: `(claim, expires_at)`.
pub fn refresh_claim(
    conn: &mut PgConnection,
    id: &ConnectionId,
) -> QueryResult<Option<(String, DateTime<Utc>)>> {
    refresh_claims::table
        .find(id)
        .select((refresh_claims::claim, refresh_claims::expires_at))
        .first(conn)
        .optional()
}

/// Marks a refresh as in flight under `claim` until `until`, replacing a lapsed claim (the
/// connection row is locked by the caller).
pub fn claim_refresh(
    conn: &mut PgConnection,
    id: &ConnectionId,
    claim: &str,
    until: DateTime<Utc>,
) -> QueryResult<usize> {
    use refresh_claims as col;
    diesel::insert_into(refresh_claims::table)
        .values((
            col::connection_id.eq(id),
            col::claim.eq(claim),
            col::expires_at.eq(until),
        ))
        .on_conflict(col::connection_id)
        .do_update()
        .set((col::claim.eq(claim), col::expires_at.eq(until)))
        .execute(conn)
}

/// Drops `claim` if it is still the connection's; true if it was. Writing a refresh's result
/// happens only in the same transaction as a `true` from this.
pub fn release_claim(conn: &mut PgConnection, id: &ConnectionId, claim: &str) -> QueryResult<bool> {
    diesel::delete(
        refresh_claims::table
            .filter(refresh_claims::connection_id.eq(id))
            .filter(refresh_claims::claim.eq(claim)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// The outcome of a successful refresh.
pub struct Refreshed<'a> {
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Option<Vec<Option<String>>>,
}

pub fn save_refreshed(
    conn: &mut PgConnection,
    id: &ConnectionId,
    r: &Refreshed<'_>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    use connections as col;
    let target = connections::table.find(id);
    let base = (
        col::access_token.eq(r.access_token),
        col::refresh_token.eq(r.refresh_token),
        col::expires_at.eq(r.expires_at),
        col::refresh_failures.eq(0),
        col::next_refresh_at.eq(None::<DateTime<Utc>>),
        col::status.eq(Status::Active),
        col::updated_at.eq(now),
    );
    match &r.scopes {
        Some(new_scopes) => diesel::update(target)
            .set((base, col::scopes.eq(new_scopes)))
            .execute(conn),
        None => diesel::update(target).set(base).execute(conn),
    }
}

pub fn mark_needs_reauth(
    conn: &mut PgConnection,
    id: &ConnectionId,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    use connections as col;
    diesel::update(connections::table.find(id))
        .set((
            col::status.eq(Status::NeedsReauth),
            col::refresh_failures.eq(col::refresh_failures + 1),
            col::next_refresh_at.eq(None::<DateTime<Utc>>),
            col::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn record_failure(
    conn: &mut PgConnection,
    id: &ConnectionId,
    failures: i32,
    next_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    use connections as col;
    diesel::update(connections::table.find(id))
        .set((
            col::refresh_failures.eq(failures),
            col::next_refresh_at.eq(Some(next_at)),
            col::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn delete_for_owner(
    conn: &mut PgConnection,
    id: &ConnectionId,
    owner: &UserId,
) -> QueryResult<usize> {
    diesel::delete(
        connections::table
            .filter(connections::id.eq(id))
            .filter(connections::owner_id.eq(owner)),
    )
    .execute(conn)
}

/// Active connections with a refresh token whose access token expires before `before`, that
/// are not backing off and not being refreshed by someone else, soonest first.
pub fn due_for_refresh(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    connections::table
        .filter(connections::status.eq(Status::Active))
        .filter(connections::refresh_token.is_not_null())
        .filter(connections::expires_at.lt(before))
        .filter(
            connections::next_refresh_at
                .is_null()
                .or(connections::next_refresh_at.le(now)),
        )
        .filter(diesel::dsl::not(diesel::dsl::exists(
            refresh_claims::table
                .filter(refresh_claims::connection_id.eq(connections::id))
                .filter(refresh_claims::expires_at.gt(now)),
        )))
        .order(connections::expires_at.asc())
        .limit(limit)
        .select(connections::id)
        .load(conn)
}

pub fn insert_flow(conn: &mut PgConnection, flow: &FlowRow) -> QueryResult<usize> {
    diesel::insert_into(oauth_flows::table)
        .values(flow)
        .execute(conn)
}

/// Marks the flow consumed and returns it, in one statement: of two callbacks with the same
/// state, exactly one gets the row.
pub fn claim_flow(
    conn: &mut PgConnection,
    hash: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<FlowRow>> {
    diesel::update(
        oauth_flows::table
            .filter(oauth_flows::state_hash.eq(hash))
            .filter(oauth_flows::provider.eq(provider))
            .filter(oauth_flows::consumed_at.is_null()),
    )
    .set(oauth_flows::consumed_at.eq(Some(now)))
    .returning(FlowRow::as_returning())
    .get_result(conn)
    .optional()
}

pub fn find_flow(conn: &mut PgConnection, hash: &str) -> QueryResult<Option<FlowRow>> {
    oauth_flows::table
        .find(hash)
        .select(FlowRow::as_select())
        .first(conn)
        .optional()
}

/// Flows whose state expired before `before`: neither usable nor worth a "replayed" answer.
pub fn delete_stale_flows(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(oauth_flows::table.filter(oauth_flows::expires_at.lt(before))).execute(conn)
}
