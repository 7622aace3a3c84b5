//! The `webhook_route` job: stored deliveries → the connections they concern, each getting a
//! row in the event feed (`connection_events`); `OAuthApp revoked` marks them revoked.
//! Unmatched deliveries are kept and marked `unmatched` for operators. And `events_prune`:
//! retention.
//!
//! One routing job is enqueued per intake batch (with the batch, in its statement), not per
//! delivery, and a run routes **every** pending delivery it can lock, oldest first, in chunks
//! of [`ROUTE_CHUNK`]: each chunk is claimed with `FOR UPDATE SKIP LOCKED`, matched with one
//! query on `connections`, and written with one insert into the feed and one update of the
//! events, all in one transaction (so a delivery is routed exactly once: a crash rolls its
//! chunk back to `pending`). Why nothing is stranded: a batch's job commits with the batch, so
//! it runs after the batch is visible; a pending delivery it skips is locked by another run,
//! whose job is not finished until that chunk commits (or, if that run dies, is claimed again
//! after its lease and routes what is pending). A run ends when a chunk comes back short; after
//! [`MAX_CHUNKS`] full chunks it queues a follow-up job in its last transaction instead. A run
//! first deletes the routing jobs waiting behind it (see [`absorb_waiting_jobs`]): a backlog
//! is one run, not one per batch.

use crate::connectors::Ctx;
use crate::db::ids::UserId;
use crate::db::{self, DbError};
use crate::jobs::{Job, JobError};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(crate) const ROUTE_KIND: &str = "webhook_route";
pub(crate) const PRUNE_KIND: &str = "events_prune";

/// Deliveries one routing transaction claims and routes.
pub const ROUTE_CHUNK: i64 = 500;
/// Full chunks one run routes before it hands over to a follow-up job.
const MAX_CHUNKS: usize = 40;

/// Taken at the end of every routing transaction, right before the feed rows get their
/// cursors: cursors are then handed out and committed in one order, so a reader never sees
/// cursor N before N-1 (what makes `Last-Event-ID` resumption gap-free).
const FEED_LOCK: i64 = 0x5357_4645_4544; // "SWFEED"

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    action: Option<String>,
    /// Only what routing reads (see [`CLAIM_SQL`]).
    #[diesel(sql_type = Jsonb)]
    payload: Value,
    #[diesel(sql_type = Timestamptz)]
    received_at: DateTime<Utc>,
}

/// The oldest pending deliveries nobody else is routing. A Linear event is routed by its
/// `organizationId` alone and a GitHub one by three ids, so only those cross the wire and get
/// parsed; agent session events need the whole body.
const CLAIM_SQL: &str = "SELECT id, provider, event_type, action, received_at, \
       CASE WHEN provider = 'linear' AND event_type = 'AgentSessionEvent' THEN payload \
            WHEN provider = 'linear' THEN jsonb_build_object('organizationId', payload->'organizationId') \
            WHEN provider = 'github' THEN jsonb_build_object( \
                'installation', jsonb_build_object('account', jsonb_build_object('id', payload#>'{installation,account,id}')), \
                'repository', jsonb_build_object('owner', jsonb_build_object('id', payload#>'{repository,owner,id}')), \
                'sender', jsonb_build_object('id', payload#>'{sender,id}')) \
            ELSE '{}'::jsonb END AS payload \
     FROM webhook_events WHERE status = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";

#[derive(QueryableByName, Clone)]
struct Matched {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    owner_id: UserId,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    external_account_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    external_org_id: Option<String>,
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

fn linear_org(payload: &Value) -> Option<&str> {
    payload.get("organizationId").and_then(Value::as_str)
}

/// The connections of `list` not revoked earlier in the chunk.
fn live<'a>(list: Option<&Vec<&'a Matched>>, revoked: &HashSet<&str>) -> Vec<&'a Matched> {
    list.map(|l| {
        l.iter()
            .copied()
            .filter(|c| !revoked.contains(c.id.as_str()))
            .collect()
    })
    .unwrap_or_default()
}

/// Routes one chunk of pending deliveries inside the caller's transaction; returns how many it
/// claimed (fewer than `limit`: nothing more was pending and unlocked).
fn route_chunk(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<usize, DbError> {
    let events: Vec<EventRow> = crate::db::prepared(CLAIM_SQL)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    if events.is_empty() {
        return Ok(0);
    }
    // Every connection any of them could match, in one query.
    let mut orgs = Vec::new();
    let mut accounts = Vec::new();
    let candidates: Vec<Vec<String>> = events
        .iter()
        .map(|e| match e.provider.as_str() {
            "linear" => {
                orgs.extend(linear_org(&e.payload).map(str::to_owned));
                Vec::new()
            }
            "github" => {
                let c = github_candidates(&e.payload);
                accounts.extend(c.iter().cloned());
                c
            }
            _ => Vec::new(),
        })
        .collect();
    let connections: Vec<Matched> = if orgs.is_empty() && accounts.is_empty() {
        Vec::new()
    } else {
        crate::db::prepared(
            "SELECT id, owner_id, provider, external_account_id, external_org_id FROM connections \
             WHERE status <> 'revoked' AND ((provider = 'linear' AND external_org_id = ANY($1)) \
                OR (provider = 'github' AND external_account_id = ANY($2))) \
             ORDER BY created_at, id",
        )
        .bind::<Array<Text>, _>(&orgs)
        .bind::<Array<Text>, _>(&accounts)
        .load(conn)?
    };
    let mut by_org: HashMap<&str, Vec<&Matched>> = HashMap::new();
    let mut by_account: HashMap<&str, Vec<&Matched>> = HashMap::new();
    for c in &connections {
        match (c.provider.as_str(), &c.external_org_id) {
            ("linear", Some(org)) => by_org.entry(org).or_default().push(c),
            ("github", _) => by_account
                .entry(c.external_account_id.as_str())
                .or_default()
                .push(c),
            _ => {}
        }
    }
    // In delivery order, as if routed one by one: a revocation hides its connections from the
    // deliveries after it.
    let mut revoked: HashSet<&str> = HashSet::new();
    let mut feed = FeedRows::default();
    let mut marks = Marks::default();
    for (event, candidates) in events.iter().zip(&candidates) {
        let matched: Vec<&Matched> = match event.provider.as_str() {
            "linear" => linear_org(&event.payload)
                .map(|org| live(by_org.get(org), &revoked))
                .unwrap_or_default(),
            "github" => candidates
                .iter()
                .map(|c| live(by_account.get(c.as_str()), &revoked))
                .find(|found| !found.is_empty())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if event.provider == "linear"
            && event.event_type == "OAuthApp"
            && event.action.as_deref() == Some("revoked")
            && !matched.is_empty()
        {
            let ids: Vec<&str> = matched.iter().map(|m| m.id.as_str()).collect();
            crate::db::prepared(
                "UPDATE connections SET status = 'revoked', updated_at = $2 WHERE id = ANY($1)",
            )
            .bind::<Array<Text>, _>(&ids)
            .bind::<Timestamptz, _>(now)
            .execute(conn)?;
            tracing::info!(
                count = ids.len(),
                "Linear OAuthApp revoked: connections marked revoked"
            );
            revoked.extend(ids);
        }
        if event.provider == "linear" && event.event_type == "AgentSessionEvent" {
            crate::connectors::linear_agent::enqueue_for_event(
                conn,
                event.id,
                &event.payload,
                now,
            )?;
        }
        for m in &matched {
            feed.event_ids.push(event.id);
            feed.connection_ids.push(&m.id);
            feed.owner_ids.push(&m.owner_id);
            feed.providers.push(&event.provider);
            feed.event_types.push(&event.event_type);
            feed.created_at.push(event.received_at);
        }
        marks.ids.push(event.id);
        marks.statuses.push(if matched.is_empty() {
            "unmatched"
        } else {
            "routed"
        });
        marks
            .matched
            .push(i32::try_from(matched.len()).unwrap_or(i32::MAX));
    }
    if !feed.event_ids.is_empty() {
        crate::db::prepared("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(FEED_LOCK)
            .execute(conn)?;
        // Cursors are handed out in (delivery, connection) order.
        crate::db::prepared(
            "INSERT INTO connection_events (event_id, connection_id, owner_id, provider, event_type, created_at) \
             SELECT event_id, connection_id, owner_id, provider, event_type, created_at \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) \
                 WITH ORDINALITY AS f(event_id, connection_id, owner_id, provider, event_type, created_at, ord) \
             ORDER BY ord ON CONFLICT DO NOTHING",
        )
        .bind::<Array<BigInt>, _>(&feed.event_ids)
        .bind::<Array<Text>, _>(&feed.connection_ids)
        .bind::<Array<Text>, _>(&feed.owner_ids)
        .bind::<Array<Text>, _>(&feed.providers)
        .bind::<Array<Text>, _>(&feed.event_types)
        .bind::<Array<Timestamptz>, _>(&feed.created_at)
        .execute(conn)?;
    }
    crate::db::prepared(
        "UPDATE webhook_events w SET status = m.status, matched = m.matched, routed_at = $4 \
         FROM unnest($1::bigint[], $2::text[], $3::int[]) AS m(id, status, matched) WHERE w.id = m.id",
    )
    .bind::<Array<BigInt>, _>(&marks.ids)
    .bind::<Array<Text>, _>(&marks.statuses)
    .bind::<Array<Integer>, _>(&marks.matched)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(events.len())
}

/// The feed rows of one chunk, as columns for one `unnest` insert.
#[derive(Default)]
struct FeedRows<'a> {
    event_ids: Vec<i64>,
    connection_ids: Vec<&'a str>,
    owner_ids: Vec<&'a str>,
    providers: Vec<&'a str>,
    event_types: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
}

/// Each routed delivery's outcome, as columns for one `unnest` update.
#[derive(Default)]
struct Marks {
    ids: Vec<i64>,
    statuses: Vec<&'static str>,
    matched: Vec<i32>,
}

/// Deletes the other routing jobs waiting in the queue, first thing in a run's first
/// transaction: every one of them committed with its batch, so that batch is visible to this
/// run's claims (taken after this statement) and routed by this run, which does not end before
/// a chunk comes back short (or hands over to a follow-up). Jobs being claimed right now are
/// skipped (they run and find little). Without this, a backlog of N batches was N runs, all but
/// one finding nothing.
fn absorb_waiting_jobs(conn: &mut PgConnection, own: i64) -> QueryResult<usize> {
    crate::db::prepared(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE kind = $1 AND state = 'queued' \
         AND id <> $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Text, _>(ROUTE_KIND)
    .bind::<BigInt, _>(own)
    .execute(conn)
}

/// Routes pending deliveries chunk by chunk; the last chunk's transaction also ends the job
/// (or, after [`MAX_CHUNKS`] full ones, queues the follow-up that carries on).
pub(crate) async fn run_route(ctx: Arc<Ctx>, job: Job) -> Result<(), JobError> {
    let max_attempts = ctx.config.jobs.max_attempts;
    for chunk in 1..=MAX_CHUNKS {
        let now = ctx.clock.now();
        let job = job.clone();
        let (done, follow_up) = db::run(&ctx.jobs_pool, move |conn| {
            conn.transaction::<_, JobError, _>(|conn| {
                if chunk == 1 {
                    absorb_waiting_jobs(conn, job.id)?;
                }
                let routed = route_chunk(conn, now, ROUTE_CHUNK)?;
                let short = routed < usize::try_from(ROUTE_CHUNK).unwrap_or(usize::MAX);
                if !short && chunk < MAX_CHUNKS {
                    return Ok((false, false));
                }
                if !short {
                    crate::jobs::enqueue(
                        conn,
                        now,
                        ROUTE_KIND,
                        &serde_json::json!({}),
                        &crate::jobs::EnqueueOpts {
                            max_attempts: Some(max_attempts),
                            ..Default::default()
                        },
                    )?;
                }
                // Lost the claim (lease ran out): the routing stands, the other run finds
                // less to do; nothing to roll back.
                job.finish_in(conn)?;
                Ok((true, !short))
            })
        })
        .await?;
        if follow_up {
            ctx.jobs_wake.notify_one();
        }
        if done {
            return Ok(());
        }
    }
    Ok(())
}

/// Deletes deliveries (and their feed rows) older than the retention, in batches, then finished
/// agent runs past theirs.
pub(crate) async fn run_prune(ctx: Arc<Ctx>, _job: Job) -> Result<(), JobError> {
    let cutoff = ctx.clock.now() - chrono::Duration::days(ctx.config.webhooks.event_retention_days);
    let mut total = 0;
    loop {
        let n = db::query(&ctx.jobs_pool, move |conn| {
            crate::db::prepared(
                "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events \
                 WHERE received_at < $1 ORDER BY received_at LIMIT 5000)",
            )
            .bind::<Timestamptz, _>(cutoff)
            .execute(conn)
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
