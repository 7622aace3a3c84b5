//! Keeping access tokens fresh: [`access_token`], the one function later capabilities call,
//! the forced refresh behind `POST /api/connections/{id}/refresh`, and the periodic sweep (a
//! `refresh_sweep` job: one at a time across processes).
//!
//! Single flight, across processes, without holding anything while the provider thinks:
//!
//! 1. **Claim** (one short transaction through `db::run`): lock the row, decide whether a
//!    refresh is needed at all (another process may just have done it), and if so write a
//!    random claim id and a lease end (`refresh_claim`, `refresh_claim_expires_at`). A row
//!    with a live claim of someone else's is not touched: the caller waits (async, no
//!    connection held) and reads the row again, so it sees the claimer's result.
//! 2. **Call** the token endpoint with no transaction and no pooled connection held; transient
//!    failures are retried with async sleeps.
//! 3. **Write back** (a second short transaction) only `WHERE refresh_claim = <our id>`, and
//!    clear the claim. A claimer that crashed leaves a lease that runs out (by the injected
//!    clock); whoever claims next takes over, and a late write of the crashed one finds its
//!    claim gone and changes nothing. Reconnecting the account clears the claim too.
//!
//! A slow provider thus costs one claim per connection, not one pooled connection and one
//! blocking thread: other requests keep the whole pool. A lost response can be replayed within
//! Linear's 30-minute refresh-token grace.

use crate::connectors::error::ConnectorsError;
use crate::connectors::models::{ConnectionId, ConnectionRow, Status, scope_column};
use crate::connectors::oauth::{self, TokenError};
use crate::connectors::pending;
use crate::connectors::store;
use crate::connectors::vault::{Field, Plain};
use crate::connectors::{Ctx, jitter};
use crate::db::ids::UserId;
use crate::db::{self, DbError};
use crate::platform::clock::expires_after;
use chrono::{DateTime, Duration, Utc};
use diesel::Connection;
use std::sync::Arc;

/// In-call retries of a transient token-endpoint failure, before backing off across calls.
const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
enum Mode {
    /// Refresh only if less than the margin remains.
    Proactive,
    /// Refresh now, unless the row changed since `seen` (its sealed access token) was read:
    /// then a concurrent refresh already did the work.
    Force { seen: String },
}

/// A fresh access token for the connection, refreshing it first when less than
/// `connectors.refresh.margin_secs` remain. Never returns an expired token: a connection that
/// cannot be refreshed is an error (`NeedsReauth`, `Backoff`, provider errors).
pub async fn access_token(ctx: &Arc<Ctx>, id: &ConnectionId) -> Result<Plain, ConnectorsError> {
    let wanted = id.clone();
    let row = db::query(&ctx.pool, move |c| store::find(c, &wanted))
        .await?
        .ok_or(ConnectorsError::ConnectionNotFound)?;
    if row.status() != Status::Active {
        return Err(ConnectorsError::NeedsReauth);
    }
    if is_fresh(ctx, &row, ctx.clock.now()) {
        return Ok(ctx
            .vault
            .open(Field::AccessToken, &row.id, &row.access_token)?);
    }
    refresh(ctx, id.clone(), Mode::Proactive)
        .await
        .map(|(token, _)| token)
}

/// Refreshes now (the owner asked), returning the updated row. Two concurrent calls make one
/// provider call: the second waits for the first's claim and finds the row changed.
pub async fn refresh_now(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    id: &ConnectionId,
) -> Result<ConnectionRow, ConnectorsError> {
    let (wanted, who) = (id.clone(), owner.to_owned());
    let row = db::query(&ctx.pool, move |c| store::find_for_owner(c, &wanted, &who))
        .await?
        .ok_or(ConnectorsError::ConnectionNotFound)?;
    if row.status() != Status::Active {
        return Err(ConnectorsError::NeedsReauth);
    }
    if row.refresh_token.is_none() {
        return Err(ConnectorsError::Validation(
            "This connection has no refresh token; its access token does not expire".to_owned(),
        ));
    }
    let seen = row.access_token.clone();
    refresh(ctx, id.clone(), Mode::Force { seen })
        .await
        .map(|(_, row)| row)
}

fn margin(ctx: &Ctx) -> Duration {
    Duration::seconds(i64::try_from(ctx.config.connectors.refresh.margin_secs).unwrap_or(900))
}

fn is_fresh(ctx: &Ctx, row: &ConnectionRow, now: DateTime<Utc>) -> bool {
    row.expires_at.is_none_or(|at| at - now > margin(ctx))
}

fn still_valid(row: &ConnectionRow, now: DateTime<Utc>) -> bool {
    row.expires_at.is_none_or(|at| at > now)
}

/// How long a claim lasts: every attempt's timeout, the pauses between them, and slack.
fn lease(ctx: &Ctx) -> std::time::Duration {
    let per_call = ctx.config.connectors.provider_timeout_secs.max(1);
    std::time::Duration::from_secs(per_call * u64::from(ATTEMPTS) + 10)
}

/// How often a caller that found someone else's claim looks at the row again.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What a refresh ended with.
enum Outcome {
    Token(Plain, Box<ConnectionRow>),
    Failed(ConnectorsError),
}

impl Outcome {
    fn into_result(self) -> Result<(Plain, ConnectionRow), ConnectorsError> {
        match self {
            Self::Token(token, row) => Ok((token, *row)),
            Self::Failed(err) => Err(err),
        }
    }
}

/// What the claim transaction decided.
enum Step {
    /// Nothing to call: the answer is known (fresh, refreshed meanwhile, needs reauth …).
    Done(Outcome),
    /// Ours to refresh: the row as claimed, under `claim`.
    Claimed {
        row: Box<ConnectionRow>,
        claim: String,
    },
    /// Someone else holds a live claim.
    Busy(Box<ConnectionRow>),
}

fn current(ctx: &Ctx, row: ConnectionRow) -> Result<Outcome, ConnectorsError> {
    let token = ctx
        .vault
        .open(Field::AccessToken, &row.id, &row.access_token)?;
    Ok(Outcome::Token(token, Box::new(row)))
}

async fn refresh(
    ctx: &Arc<Ctx>,
    id: ConnectionId,
    mode: Mode,
) -> Result<(Plain, ConnectionRow), ConnectorsError> {
    // A wall-clock bound on waiting for another claimer: the lease (by the injected clock)
    // normally ends the wait first.
    let give_up = tokio::time::Instant::now() + lease(ctx);
    let (row, claim) = loop {
        let (ctx2, id2, mode2) = (ctx.clone(), id.clone(), mode.clone());
        let step = db::run(&ctx.pool, move |c| {
            c.transaction(|c| claim_step(c, &ctx2, &id2, &mode2))
        })
        .await?;
        match step {
            Step::Done(outcome) => return outcome.into_result(),
            Step::Claimed { row, claim } => break (*row, claim),
            Step::Busy(row) => {
                if tokio::time::Instant::now() >= give_up {
                    let now = ctx.clock.now();
                    if matches!(mode, Mode::Proactive) && still_valid(&row, now) {
                        return current(ctx, *row)?.into_result();
                    }
                    return Err(ConnectorsError::ProviderUnavailable);
                }
                tokio::time::sleep(jitter(WAIT_POLL)).await;
            }
        }
    };
    let row_id = row.id.clone();
    let result = call_and_write_back(ctx, row, claim.clone(), &mode).await;
    if result.is_err() {
        // Whatever failed (sealing, the database), others need not wait out the lease. A no-op
        // when the write-back already released the claim.
        release(ctx, &row_id, &claim).await;
    }
    result?.into_result()
}

/// Step 1, inside one short transaction holding the row lock.
fn claim_step(
    c: &mut diesel::PgConnection,
    ctx: &Ctx,
    id: &ConnectionId,
    mode: &Mode,
) -> Result<Step, ConnectorsError> {
    let row = store::lock(c, id)?.ok_or(ConnectorsError::ConnectionNotFound)?;
    let now = ctx.clock.now();
    let done = |outcome: Result<Outcome, ConnectorsError>| outcome.map(Step::Done);
    if row.status() != Status::Active {
        return done(Ok(Outcome::Failed(ConnectorsError::NeedsReauth)));
    }
    match mode {
        Mode::Proactive if is_fresh(ctx, &row, now) => return done(current(ctx, row)),
        Mode::Force { seen } if *seen != row.access_token => return done(current(ctx, row)),
        _ => {}
    }
    if row.refresh_token.is_none() {
        if still_valid(&row, now) {
            return done(current(ctx, row));
        }
        store::mark_needs_reauth(c, &row.id, now)?;
        return done(Ok(Outcome::Failed(ConnectorsError::NeedsReauth)));
    }
    let existing = store::refresh_claim(c, &row.id)?;
    if existing.as_ref().is_some_and(|(_, until)| *until > now) {
        return Ok(Step::Busy(Box::new(row)));
    }
    if matches!(mode, Mode::Proactive)
        && let Some(next) = row.next_refresh_at
        && next > now
    {
        if still_valid(&row, now) {
            return done(current(ctx, row));
        }
        return done(Ok(Outcome::Failed(ConnectorsError::Backoff(
            (next - now).num_seconds().max(1),
        ))));
    }
    if ctx.registry.get(&row.provider).is_none() {
        tracing::error!(connection_id = %row.id, provider = %row.provider,
            "cannot refresh: the connection's provider is not configured");
        return done(Ok(Outcome::Failed(ConnectorsError::ProviderUnavailable)));
    }
    if existing.is_some() {
        tracing::warn!(connection_id = %row.id,
            "a refresh claim's lease ran out (its claimer died or hung); taking over");
    }
    let claim = crate::crypto::random::id();
    let lease = Duration::milliseconds(i64::try_from(lease(ctx).as_millis()).unwrap_or(60_000));
    store::claim_refresh(c, &row.id, &claim, now + lease)?;
    Ok(Step::Claimed {
        row: Box::new(row),
        claim,
    })
}

/// Steps 2 and 3: the provider call with nothing held, then the conditional write.
async fn call_and_write_back(
    ctx: &Arc<Ctx>,
    row: ConnectionRow,
    claim: String,
    mode: &Mode,
) -> Result<Outcome, ConnectorsError> {
    let provider = ctx
        .registry
        .get(&row.provider)
        .ok_or(ConnectorsError::ProviderUnavailable)?;
    let sealed_refresh = row.refresh_token.clone().unwrap_or_default();
    let refresh_token = ctx
        .vault
        .open(Field::RefreshToken, &row.id, &sealed_refresh)?;

    let mut attempt = 1;
    let result = loop {
        match oauth::refresh_grant(&ctx.http, &provider, &refresh_token).await {
            Err(err) if err.is_transient() && attempt < ATTEMPTS => {
                tracing::info!(connection_id = %row.id, provider = %row.provider, attempt,
                    error = %err, "token refresh failed transiently; retrying");
                // 250 ms, 500 ms, jittered; the claim keeps other callers waiting meanwhile.
                tokio::time::sleep(jitter(std::time::Duration::from_millis(
                    250 << (attempt - 1),
                )))
                .await;
                attempt += 1;
            }
            other => break other,
        }
    };
    let now = ctx.clock.now();

    match result {
        Ok(tokens) => {
            let access = ctx
                .vault
                .seal(Field::AccessToken, &row.id, &tokens.access_token)?;
            // No refresh_token in the response: keep the one we have (Nango #298).
            let refresh = match &tokens.refresh_token {
                Some(new) => ctx.vault.seal(Field::RefreshToken, &row.id, new)?,
                None => sealed_refresh,
            };
            // Provider input: clamped, never an overflowing `now + delta`.
            let expires_at = tokens
                .expires_in
                .map(|s| expires_after(now, u64::try_from(s).unwrap_or(0)));
            let scopes = tokens.scopes.as_deref().map(scope_column);
            let (id, claim2) = (row.id.clone(), claim.clone());
            let saved = db::run(&ctx.pool, move |c| {
                c.transaction::<_, DbError, _>(|c| {
                    let mut n = 0;
                    if store::release_claim(c, &id, &claim2)? {
                        n = store::save_refreshed(
                            c,
                            &id,
                            &store::Refreshed {
                                access_token: &access,
                                refresh_token: Some(&refresh),
                                expires_at,
                                scopes,
                            },
                            now,
                        )?;
                    }
                    Ok((n, store::find(c, &id)?))
                })
            })
            .await?;
            let rotated = tokens.refresh_token.is_some();
            match saved {
                (1, Some(fresh)) => {
                    tracing::info!(connection_id = %row.id, provider = %row.provider, rotated,
                        "access token refreshed");
                    Ok(Outcome::Token(tokens.access_token, Box::new(fresh)))
                }
                (_, Some(other)) => {
                    // Our lease ran out and someone else claimed, or the account was
                    // reconnected: their state wins. The token we got is still good to use.
                    tracing::warn!(connection_id = %row.id, provider = %row.provider, rotated,
                        "refreshed, but the claim was lost meanwhile; the result is not stored");
                    Ok(Outcome::Token(tokens.access_token, Box::new(other)))
                }
                (_, None) => Ok(Outcome::Failed(ConnectorsError::ConnectionNotFound)),
            }
        }
        Err(TokenError::InvalidGrant) => {
            tracing::warn!(connection_id = %row.id, provider = %row.provider,
                "refresh token refused (invalid_grant): the connection needs reauthorization");
            let (id, claim2) = (row.id.clone(), claim.clone());
            db::run(&ctx.pool, move |c| {
                c.transaction::<_, DbError, _>(|c| {
                    if store::release_claim(c, &id, &claim2)? {
                        store::mark_needs_reauth(c, &id, now)?;
                    }
                    Ok(())
                })
            })
            .await?;
            Ok(Outcome::Failed(ConnectorsError::NeedsReauth))
        }
        Err(err) => {
            let failures = row.refresh_failures.saturating_add(1);
            let wait = backoff(ctx, failures);
            let (id, claim2) = (row.id.clone(), claim.clone());
            db::run(&ctx.pool, move |c| {
                c.transaction::<_, DbError, _>(|c| {
                    if store::release_claim(c, &id, &claim2)? {
                        store::record_failure(c, &id, failures, now + wait, now)?;
                    }
                    Ok(())
                })
            })
            .await?;
            tracing::warn!(connection_id = %row.id, provider = %row.provider, failures,
                retry_in_secs = wait.num_seconds(), error = %err, "token refresh failed");
            if matches!(mode, Mode::Proactive) && still_valid(&row, now) {
                // The old token still works for a while: serve it, the sweep tries again.
                return current(ctx, row);
            }
            Ok(Outcome::Failed(err.into()))
        }
    }
}

/// Gives a claim back without a result.
async fn release(ctx: &Arc<Ctx>, id: &ConnectionId, claim: &str) {
    let (id, claim) = (id.clone(), claim.to_owned());
    if let Err(err) = db::query(&ctx.pool, move |c| store::release_claim(c, &id, &claim))
        .await
        .map(drop)
    {
        tracing::warn!(error = %err, "could not release a refresh claim; its lease will run out");
    }
}

/// 30 s doubling per consecutive failure, capped at `max_backoff_secs`, jittered.
fn backoff(ctx: &Ctx, failures: i32) -> Duration {
    let cap = ctx.config.connectors.refresh.max_backoff_secs.max(30);
    let exp = u32::try_from(failures.clamp(1, 20) - 1).unwrap_or(0);
    let secs = 30u64.saturating_mul(1u64 << exp).min(cap);
    let jittered = jitter(std::time::Duration::from_secs(secs));
    Duration::milliseconds(i64::try_from(jittered.as_millis()).unwrap_or(i64::MAX))
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub due: usize,
    pub refreshed: usize,
    pub failed: usize,
    pub flows_deleted: usize,
    pub grants_deleted: usize,
    /// MCP authorization flows (`mcp_auth_flows`) that expired more than a day ago.
    pub mcp_flows_deleted: usize,
}

/// Refreshes up to `sweep_batch` connections expiring within the margin, deletes OAuth flows
/// that expired more than a day ago (kept that long so a replay gets a clear answer) and
/// pending grants nobody redeemed in time; MCP authorization flows likewise.
pub async fn sweep_once(ctx: &Arc<Ctx>) -> Result<SweepReport, ConnectorsError> {
    let now = ctx.clock.now();
    let before = now + margin(ctx);
    let limit = i64::from(ctx.config.connectors.refresh.sweep_batch);
    let (due, flows_deleted, grants_deleted, mcp_flows_deleted) =
        db::run(&ctx.pool, move |c| -> Result<_, DbError> {
            let flows = store::delete_stale_flows(c, now - Duration::days(1))?;
            let grants = pending::delete_expired(c, now)?;
            let mcp_flows = super::mcp::delete_stale_auth_flows(c, now - Duration::days(1))?;
            Ok((
                store::due_for_refresh(c, before, now, limit)?,
                flows,
                grants,
                mcp_flows,
            ))
        })
        .await?;
    let mut report = SweepReport {
        due: due.len(),
        flows_deleted,
        grants_deleted,
        mcp_flows_deleted,
        ..SweepReport::default()
    };
    for id in due {
        match refresh(ctx, ConnectionId(id), Mode::Proactive).await {
            Ok(_) => report.refreshed += 1,
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}

/// The sweep's job kind. Its dedupe key is the kind: at most one sweep is queued or running
/// across all processes.
pub const SWEEP_KIND: &str = "refresh_sweep";

fn sweep_opts(ctx: &Ctx, run_at: Option<DateTime<Utc>>) -> crate::jobs::EnqueueOpts {
    crate::jobs::EnqueueOpts {
        dedupe_key: Some(SWEEP_KIND.to_owned()),
        run_at,
        max_attempts: Some(ctx.config.jobs.max_attempts),
        ..Default::default()
    }
}

/// Queues a sweep due now unless one is already queued or running (in any process); true
/// when this call added it.
pub async fn schedule_sweep(ctx: &Arc<Ctx>) -> Result<bool, ConnectorsError> {
    let now = ctx.clock.now();
    let opts = sweep_opts(ctx, None);
    let added = db::run(&ctx.pool, move |conn| {
        crate::jobs::enqueue(conn, now, SWEEP_KIND, &serde_json::json!({}), &opts)
    })
    .await?
    .is_some();
    if added {
        ctx.jobs_wake.notify_one();
    }
    Ok(added)
}

/// The `refresh_sweep` job: one [`sweep_once`], then, in one transaction, this job's end and
/// the next sweep `sweep_interval_secs` ± 20 % later (the dedupe key admits the next one only
/// once this one is gone). A sweep that fails is retried by the queue.
pub async fn run_sweep_job(
    ctx: Arc<Ctx>,
    job: crate::jobs::Job,
) -> Result<(), crate::jobs::JobError> {
    let report = sweep_once(&ctx)
        .await
        .map_err(|e| crate::jobs::JobError::retry(e.to_string()))?;
    if report.due > 0
        || report.flows_deleted > 0
        || report.grants_deleted > 0
        || report.mcp_flows_deleted > 0
    {
        tracing::info!(
            due = report.due,
            refreshed = report.refreshed,
            failed = report.failed,
            flows_deleted = report.flows_deleted,
            grants_deleted = report.grants_deleted,
            mcp_flows_deleted = report.mcp_flows_deleted,
            "refresh sweep"
        );
    }
    let now = ctx.clock.now();
    let every =
        std::time::Duration::from_secs(ctx.config.connectors.refresh.sweep_interval_secs.max(5));
    let next = now + Duration::from_std(jitter(every)).unwrap_or(Duration::minutes(1));
    let opts = sweep_opts(&ctx, Some(next));
    db::run(&ctx.pool, move |conn| {
        conn.transaction::<_, DbError, _>(|conn| {
            // Another worker took this run over (our lease ran out): the chain is its to keep.
            if !job.finish_in(conn)? {
                return Ok(());
            }
            crate::jobs::enqueue(conn, now, SWEEP_KIND, &serde_json::json!({}), &opts)?;
            Ok(())
        })
    })
    .await?;
    Ok(())
}

/// Keeps the sweep chain alive from this process: queues a sweep now and every
/// `sweep_interval_secs` ± 20 % (dropped by the dedupe key while one is queued or running, so
/// only a chain that broke, e.g. a sweep that ended dead, is restarted).
pub fn spawn_sweep_schedule(ctx: Arc<Ctx>, runtime: &tokio::runtime::Handle) {
    let interval = ctx.config.connectors.refresh.sweep_interval_secs.max(5);
    runtime.spawn(async move {
        loop {
            if let Err(err) = schedule_sweep(&ctx).await {
                tracing::warn!(error = %err, "scheduling the refresh sweep failed");
            }
            tokio::time::sleep(jitter(std::time::Duration::from_secs(interval))).await;
        }
    });
}
