//! The `webhook_route` job: a stored delivery → the connections it concerns, each getting a row
//! in the event feed (`connection_events`); `OAuthApp revoked` marks them revoked. Unmatched
//! deliveries are kept and marked `unmatched` for operators. And `events_prune`: retention.

use crate::connectors::Ctx;
use crate::db::{self, DbError};
use crate::jobs::{Job, JobError};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Text, Timestamptz};
use serde_json::Value;
use std::sync::Arc;

pub(crate) const ROUTE_KIND: &str = "webhook_route";
pub(crate) const PRUNE_KIND: &str = "events_prune";

/// Taken at the end of every routing transaction, right before the feed rows get their
/// cursors: cursors are then handed out and committed in one order, so a reader never sees
/// cursor N before N-1 (what makes `Last-Event-ID` resumption gap-free).
const FEED_LOCK: i64 = 0x5357_4645_4544; // "SWFEED"

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    action: Option<String>,
    #[diesel(sql_type = Jsonb)]
    payload: Value,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    received_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Matched {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    owner_id: String,
}

/// Which account ids a GitHub event carries, in the order they are tried: the App
/// installation's account, else the repository's owner, then the sender.
fn github_candidates(payload: &Value) -> Vec<String> {
    let id_at = |path: &[&str]| -> Option<String> {
        let mut v = payload;
        for key in path {
            v = v.get(key)?;
        }
        match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    [
        &["installation", "account", "id"][..],
        &["repository", "owner", "id"][..],
        &["sender", "id"][..],
    ]
    .iter()
    .filter_map(|p| id_at(p))
    .collect()
}

fn connections_by(
    conn: &mut PgConnection,
    provider: &str,
    column_is_org: bool,
    keys: &[String],
) -> Result<Vec<Matched>, DbError> {
    let sql = if column_is_org {
        "SELECT id, owner_id FROM connections WHERE provider = $1 AND external_org_id = ANY($2) \
         AND status <> 'revoked' ORDER BY created_at, id"
    } else {
        "SELECT id, owner_id FROM connections WHERE provider = $1 AND external_account_id = ANY($2) \
         AND status <> 'revoked' ORDER BY created_at, id"
    };
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(provider)
        .bind::<Array<Text>, _>(keys)
        .load(conn)?)
}

/// Routes one stored delivery; the feed rows, the event's mark and the job's end commit together.
pub(crate) async fn run_route(ctx: Arc<Ctx>, job: Job) -> Result<(), JobError> {
    let Some(event_id) = job.payload.get("event_id").and_then(Value::as_i64) else {
        return Err(JobError::permanent("payload has no event_id"));
    };
    let now = ctx.clock.now();
    db::run(&ctx.jobs_pool, move |conn| {
        conn.transaction::<_, JobError, _>(|conn| {
            // A Linear event is routed by its `organizationId` alone (agent session events
            // need the whole body): only that crosses the wire and gets parsed.
            let event: Option<EventRow> = diesel::sql_query(
                "SELECT provider, event_type, action, \
                     CASE WHEN provider = 'linear' AND event_type <> 'AgentSessionEvent' \
                     THEN jsonb_build_object('organizationId', payload->'organizationId') \
                     ELSE payload END AS payload, status, received_at \
                 FROM webhook_events WHERE id = $1 FOR UPDATE",
            )
            .bind::<BigInt, _>(event_id)
            .get_result(conn)
            .optional()
            .map_err(DbError::from)?;
            let Some(event) = event.filter(|e| e.status == "pending") else {
                // Pruned, or routed by an earlier run: nothing left to do.
                job.finish_in(conn)?;
                return Ok(());
            };
            let matched = match event.provider.as_str() {
                "linear" => match event.payload.get("organizationId").and_then(Value::as_str) {
                    Some(org) => connections_by(conn, "linear", true, &[org.to_owned()])?,
                    None => Vec::new(),
                },
                "github" => {
                    let mut found = Vec::new();
                    for candidate in github_candidates(&event.payload) {
                        found = connections_by(conn, "github", false, &[candidate])?;
                        if !found.is_empty() {
                            break;
                        }
                    }
                    found
                }
                _ => Vec::new(),
            };
            if event.provider == "linear"
                && event.event_type == "OAuthApp"
                && event.action.as_deref() == Some("revoked")
                && !matched.is_empty()
            {
                let ids: Vec<String> = matched.iter().map(|m| m.id.clone()).collect();
                diesel::sql_query(
                    "UPDATE connections SET status = 'revoked', updated_at = $2 WHERE id = ANY($1)",
                )
                .bind::<Array<Text>, _>(&ids)
                .bind::<Timestamptz, _>(now)
                .execute(conn)
                .map_err(DbError::from)?;
                tracing::info!(count = ids.len(), "Linear OAuthApp revoked: connections marked revoked");
            }
            if event.provider == "linear" && event.event_type == "AgentSessionEvent" {
                crate::connectors::linear_agent::enqueue_for_event(
                    conn,
                    event_id,
                    &event.payload,
                    now,
                )?;
            }
            if !matched.is_empty() {
                diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<BigInt, _>(FEED_LOCK)
                    .execute(conn)
                    .map_err(DbError::from)?;
                for m in &matched {
                    diesel::sql_query(
                        "INSERT INTO connection_events (event_id, connection_id, owner_id, provider, event_type, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind::<BigInt, _>(event_id)
                    .bind::<Text, _>(&m.id)
                    .bind::<Text, _>(&m.owner_id)
                    .bind::<Text, _>(&event.provider)
                    .bind::<Text, _>(&event.event_type)
                    .bind::<Timestamptz, _>(event.received_at)
                    .execute(conn)
                    .map_err(DbError::from)?;
                }
            }
            diesel::sql_query(
                "UPDATE webhook_events SET status = $2, matched = $3, routed_at = $4 WHERE id = $1",
            )
            .bind::<BigInt, _>(event_id)
            .bind::<Text, _>(if matched.is_empty() { "unmatched" } else { "routed" })
            .bind::<Integer, _>(i32::try_from(matched.len()).unwrap_or(i32::MAX))
            .bind::<Timestamptz, _>(now)
            .execute(conn)
            .map_err(DbError::from)?;
            if !job.finish_in(conn)? {
                // Another worker holds this job now (our lease ran out): its run does the work.
                return Err(JobError::retry("lost the claim"));
            }
            Ok(())
        })
    })
    .await
}

/// Deletes deliveries (and their feed rows) older than the retention, in batches, then finished
/// agent runs past theirs.
pub(crate) async fn run_prune(ctx: Arc<Ctx>, _job: Job) -> Result<(), JobError> {
    let cutoff = ctx.clock.now() - chrono::Duration::days(ctx.config.webhooks.event_retention_days);
    let mut total = 0;
    loop {
        let n = db::run(&ctx.jobs_pool, move |conn| {
            diesel::sql_query(
                "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events \
                 WHERE received_at < $1 ORDER BY received_at LIMIT 5000)",
            )
            .bind::<Timestamptz, _>(cutoff)
            .execute(conn)
            .map_err(DbError::from)
        })
        .await?;
        total += n;
        if n < 5000 {
            break;
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "pruned webhook events past retention");
    }
    // Finished agent runs have their own retention; the same periodic job applies it.
    let runs = crate::connectors::agents::service::prune(&ctx).await?;
    if runs > 0 {
        tracing::info!(deleted = runs, "pruned finished agent runs past retention");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn github_ids_are_tried_installation_then_owner_then_sender() {
        let p = json!({
            "installation": { "account": { "id": 1 } },
            "repository": { "owner": { "id": 2 } },
            "sender": { "id": 3 }
        });
        assert_eq!(github_candidates(&p), vec!["1", "2", "3"]);
        assert_eq!(
            github_candidates(&json!({ "sender": { "id": 3 } })),
            vec!["3"]
        );
        assert!(github_candidates(&json!({ "sender": null })).is_empty());
    }
}
