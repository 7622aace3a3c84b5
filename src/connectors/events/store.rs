//! Reading the event feed: a user's events by cursor, and everyone's new ones for the hub.

use crate::db::DbError;
use crate::db::ids::UserId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct FeedRow {
    #[diesel(sql_type = BigInt)]
    pub cursor: i64,
    #[diesel(sql_type = Text)]
    pub owner_id: UserId,
    #[diesel(sql_type = Text)]
    pub connection_id: String,
    #[diesel(sql_type = Text)]
    pub provider: String,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub action: Option<String>,
    #[diesel(sql_type = Text)]
    pub delivery_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
}

/// One delivery as the connection's owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventView {
    /// The cursor: `after=` / SSE `id:` / `Last-Event-ID`. A decimal string.
    pub id: String,
    pub connection_id: String,
    pub provider: String,
    /// Linear: the entity type (`Issue`, `OAuthApp` …); GitHub: the `X-GitHub-Event`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub action: Option<String>,
    pub delivery_id: String,
    pub received_at: DateTime<Utc>,
    /// The provider's payload as delivered.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<FeedRow> for EventView {
    fn from(r: FeedRow) -> Self {
        Self {
            id: r.cursor.to_string(),
            connection_id: r.connection_id,
            provider: r.provider,
            event_type: r.event_type,
            action: r.action,
            delivery_id: r.delivery_id,
            received_at: r.received_at,
            payload: r.payload,
        }
    }
}

const SELECT: &str = "SELECT ce.cursor, ce.owner_id, ce.connection_id, ce.provider, ce.event_type, \
    we.action, we.delivery_id, we.received_at, we.payload \
    FROM connection_events ce JOIN webhook_events we ON we.id = ce.event_id";

pub(crate) struct Filter<'a> {
    pub owner: &'a UserId,
    pub connection: Option<&'a str>,
    pub event_type: Option<&'a str>,
}

/// Newest first below `before` (or from the newest), or oldest first above `after`.
pub(crate) fn page(
    conn: &mut PgConnection,
    f: &Filter<'_>,
    after: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<FeedRow>, DbError> {
    let ascending = after.is_some();
    let sql = format!(
        "{SELECT} WHERE ce.owner_id = $1 AND ($2::text IS NULL OR ce.connection_id = $2) \
         AND ($3::text IS NULL OR ce.event_type = $3) AND ce.cursor > $4 AND ce.cursor < $5 \
         ORDER BY ce.cursor {} LIMIT $6",
        if ascending { "ASC" } else { "DESC" }
    );
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(f.owner)
        .bind::<Nullable<Text>, _>(f.connection)
        .bind::<Nullable<Text>, _>(f.event_type)
        .bind::<BigInt, _>(after.unwrap_or(0))
        .bind::<BigInt, _>(before.unwrap_or(i64::MAX))
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// Everyone's events above `after`, oldest first: what the hub publishes.
pub(crate) fn since(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<FeedRow>, DbError> {
    Ok(diesel::sql_query(format!(
        "{SELECT} WHERE ce.cursor > $1 ORDER BY ce.cursor LIMIT $2"
    ))
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

#[derive(QueryableByName)]
struct Max {
    #[diesel(sql_type = BigInt)]
    max: i64,
}

/// The highest cursor visible now (0 when none).
pub(crate) fn max_cursor(conn: &mut PgConnection) -> Result<i64, DbError> {
    Ok(
        crate::db::prepared("SELECT coalesce(max(cursor), 0) AS max FROM connection_events")
            .get_result::<Max>(conn)?
            .max,
    )
}

/// Whether `owner` has this connection (another user's is "not found").
pub(crate) fn owns_connection(
    conn: &mut PgConnection,
    owner: &UserId,
    id: &str,
) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct One {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        #[expect(dead_code, reason = "only its presence matters")]
        one: i32,
    }
    Ok(
        crate::db::prepared("SELECT 1 AS one FROM connections WHERE id = $1 AND owner_id = $2")
            .bind::<Text, _>(id)
            .bind::<Text, _>(owner)
            .get_result::<One>(conn)
            .optional()?
            .is_some(),
    )
}
