//! `switchboard webhooks unmatched`: deliveries that matched no connection, newest first, with
//! the ids routing looked for, so an operator sees why (an unknown workspace, a missing
//! `external_org_id`, a GitHub account nobody connected).

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use std::fmt::Write;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    delivery_id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    action: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    received_at: DateTime<Utc>,
    /// Linear: organizationId; GitHub: installation account / repository owner / sender ids.
    #[diesel(sql_type = Nullable<Text>)]
    keys: Option<String>,
}

pub fn unmatched(config: &crate::platform::config::Config, limit: i64) -> anyhow::Result<String> {
    let mut conn = PgConnection::establish(config.database.url.expose())
        .context("connecting to the database")?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id, provider, delivery_id, event_type, action, received_at, \
           CASE provider WHEN 'linear' THEN 'org=' || coalesce(payload->>'organizationId', '-') \
             ELSE 'installation=' || coalesce(payload#>>'{installation,account,id}', '-') \
               || ' owner=' || coalesce(payload#>>'{repository,owner,id}', '-') \
               || ' sender=' || coalesce(payload#>>'{sender,id}', '-') END AS keys \
         FROM webhook_events WHERE status = 'unmatched' ORDER BY received_at DESC, id DESC LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .context("reading unmatched deliveries")?;
    let mut out = String::new();
    for r in &rows {
        let _ = writeln!(
            out,
            "{:>10}  {:<7} {:<25} {}{}  delivery={}  {}",
            r.id,
            r.provider,
            r.received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            r.event_type,
            r.action
                .as_deref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default(),
            r.delivery_id,
            r.keys.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "{} unmatched delivery(ies)", rows.len());
    Ok(out)
}
