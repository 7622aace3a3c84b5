//! Keeping access tokens fresh: [`access_token`], the one function later capabilities call,
//! the forced refresh behind `POST /api/connections/{id}/refresh`, and the periodic sweep.
//!
//! Single flight, across processes: the refresh runs inside a transaction holding
//! `SELECT … FOR UPDATE` on the connection row, re-checks the row once the lock is held
//! (another process may have refreshed meanwhile), calls the token endpoint, and writes the new
//! access token and the rotated refresh token in that same transaction. A lost response can be
//! replayed within Linear's 30-minute grace; a crash before commit leaves the old pair, which
//! the grace also covers.
//!
//! Why the whole critical section runs on the blocking pool, with the HTTP call driven by
//! `Handle::block_on`: diesel's transaction is synchronous, and the lock must be held across the
//! provider call. `pg_advisory_xact_lock` would need the same open transaction across an await,
//! and a session-level advisory lock would pin a pooled connection just the same while being
//! easy to leak; the row lock also serialises with every other writer of the row (reconnect,
//! delete, key rotation). The cost is one pooled connection and one blocking thread per
//! in-flight refresh, bounded by `provider_timeout_secs`.

use crate::connectors::error::ConnectorsError;
use crate::connectors::models::{ConnectionId, ConnectionRow, Status, scope_column};
use crate::connectors::oauth::{self, TokenError};
use crate::connectors::store;
use crate::connectors::vault::{Field, Plain};
use crate::connectors::{Ctx, jitter};
use crate::db::{self, DbError};
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
    let wanted = id.0.clone();
    let row = db::run(&ctx.pool, move |c| {
        store::find(c, &wanted).map_err(DbError::from)
    })
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
    locked_refresh(ctx, id.clone(), Mode::Proactive)
        .await
        .map(|(token, _)| token)
}

/// Refreshes now (the owner asked), returning the updated row. Two concurrent calls make one
/// provider call: the second finds the row changed once it holds the lock.
pub async fn refresh_now(
    ctx: &Arc<Ctx>,
    owner: &str,
    id: &ConnectionId,
) -> Result<ConnectionRow, ConnectorsError> {
    let (wanted, who) = (id.0.clone(), owner.to_owned());
    let row = db::run(&ctx.pool, move |c| {
        store::find_for_owner(c, &wanted, &who).map_err(DbError::from)
    })
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
    locked_refresh(ctx, id.clone(), Mode::Force { seen })
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

/// What the locked section decided; committed either way, so a failure's bookkeeping
/// (status, backoff) persists.
enum Outcome {
    Token(Plain, Box<ConnectionRow>),
    Failed(ConnectorsError),
}

async fn locked_refresh(
    ctx: &Arc<Ctx>,
    id: ConnectionId,
    mode: Mode,
) -> Result<(Plain, ConnectionRow), ConnectorsError> {
    let ctx = ctx.clone();
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut conn = ctx.pool.get().map_err(DbError::from)?;
        conn.transaction::<Outcome, ConnectorsError, _>(|c| {
            locked_section(c, &ctx, &handle, &id, &mode)
        })
    })
    .await
    .map_err(|e| ConnectorsError::Db(DbError::Task(e.to_string())))??;
    match outcome {
        Outcome::Token(token, row) => Ok((token, *row)),
        Outcome::Failed(err) => Err(err),
    }
}

fn locked_section(
    c: &mut diesel::PgConnection,
    ctx: &Ctx,
    handle: &tokio::runtime::Handle,
    id: &ConnectionId,
    mode: &Mode,
) -> Result<Outcome, ConnectorsError> {
    let row = store::lock(c, id.as_str())?.ok_or(ConnectorsError::ConnectionNotFound)?;
    let now = ctx.clock.now();
    let current = |row: ConnectionRow| -> Result<Outcome, ConnectorsError> {
        let token = ctx
            .vault
            .open(Field::AccessToken, &row.id, &row.access_token)?;
        Ok(Outcome::Token(token, Box::new(row)))
    };
    if row.status() != Status::Active {
        return Ok(Outcome::Failed(ConnectorsError::NeedsReauth));
    }
    match mode {
        Mode::Proactive if is_fresh(ctx, &row, now) => return current(row),
        Mode::Force { seen } if *seen != row.access_token => return current(row),
        _ => {}
    }
    let Some(sealed_refresh) = row.refresh_token.clone() else {
        if still_valid(&row, now) {
            return current(row);
        }
        store::mark_needs_reauth(c, &row.id, now)?;
        return Ok(Outcome::Failed(ConnectorsError::NeedsReauth));
    };
    if matches!(mode, Mode::Proactive)
        && let Some(next) = row.next_refresh_at
        && next > now
    {
        if still_valid(&row, now) {
            return current(row);
        }
        return Ok(Outcome::Failed(ConnectorsError::Backoff(
            (next - now).num_seconds().max(1),
        )));
    }
    let Some(provider) = ctx.registry.get(&row.provider) else {
        tracing::error!(connection_id = %row.id, provider = %row.provider,
            "cannot refresh: the connection's provider is not configured");
        return Ok(Outcome::Failed(ConnectorsError::ProviderUnavailable));
    };
    let refresh_token = ctx
        .vault
        .open(Field::RefreshToken, &row.id, &sealed_refresh)?;

    let mut attempt = 1;
    let result = loop {
        let result = handle.block_on(oauth::refresh_grant(&ctx.http, &provider, &refresh_token));
        match result {
            Err(err) if err.is_transient() && attempt < ATTEMPTS => {
                tracing::info!(connection_id = %row.id, provider = %row.provider, attempt,
                    error = %err, "token refresh failed transiently; retrying");
                // 250 ms, 500 ms, jittered; the lock stays held, so no other caller races.
                std::thread::sleep(jitter(std::time::Duration::from_millis(
                    250 << (attempt - 1),
                )));
                attempt += 1;
            }
            other => break other,
        }
    };

    match result {
        Ok(tokens) => {
            let access = ctx
                .vault
                .seal(Field::AccessToken, &row.id, &tokens.access_token)?;
            // No refresh_token in the response: keep the one we have (Nango #298).
            let refresh = match &tokens.refresh_token {
                Some(new) => Some(ctx.vault.seal(Field::RefreshToken, &row.id, new)?),
                None => Some(sealed_refresh),
            };
            let expires_at = tokens.expires_in.map(|s| now + Duration::seconds(s));
            store::save_refreshed(
                c,
                &row.id,
                &store::Refreshed {
                    access_token: &access,
                    refresh_token: refresh.as_deref(),
                    expires_at,
                    scopes: tokens.scopes.as_deref().map(scope_column),
                },
                now,
            )?;
            tracing::info!(connection_id = %row.id, provider = %row.provider,
                rotated = tokens.refresh_token.is_some(), "access token refreshed");
            let row = store::find(c, &row.id)?.ok_or(ConnectorsError::ConnectionNotFound)?;
            Ok(Outcome::Token(tokens.access_token, Box::new(row)))
        }
        Err(TokenError::InvalidGrant) => {
            tracing::warn!(connection_id = %row.id, provider = %row.provider,
                "refresh token refused (invalid_grant): the connection needs reauthorization");
            store::mark_needs_reauth(c, &row.id, now)?;
            Ok(Outcome::Failed(ConnectorsError::NeedsReauth))
        }
        Err(err) => {
            let failures = row.refresh_failures.saturating_add(1);
            let wait = backoff(ctx, failures);
            store::record_failure(c, &row.id, failures, now + wait, now)?;
            tracing::warn!(connection_id = %row.id, provider = %row.provider, failures,
                retry_in_secs = wait.num_seconds(), error = %err, "token refresh failed");
            if matches!(mode, Mode::Proactive) && still_valid(&row, now) {
                // The old token still works for a while: serve it, the sweep tries again.
                return current(row);
            }
            Ok(Outcome::Failed(match err {
                TokenError::Rejected(code) => ConnectorsError::ProviderRejected(code),
                TokenError::Malformed => ConnectorsError::ProviderMalformed,
                _ => ConnectorsError::ProviderUnavailable,
            }))
        }
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
}

/// Refreshes up to `sweep_batch` connections expiring within the margin, and deletes OAuth
/// flows that expired more than a day ago (kept that long so a replay gets a clear answer).
pub async fn sweep_once(ctx: &Arc<Ctx>) -> Result<SweepReport, ConnectorsError> {
    let now = ctx.clock.now();
    let before = now + margin(ctx);
    let limit = i64::from(ctx.config.connectors.refresh.sweep_batch);
    let (due, flows_deleted) = db::run(&ctx.pool, move |c| -> Result<_, DbError> {
        let flows = store::delete_stale_flows(c, now - Duration::days(1))?;
        Ok((store::due_for_refresh(c, before, now, limit)?, flows))
    })
    .await?;
    let mut report = SweepReport {
        due: due.len(),
        flows_deleted,
        ..SweepReport::default()
    };
    for id in due {
        match locked_refresh(ctx, ConnectionId(id), Mode::Proactive).await {
            Ok(_) => report.refreshed += 1,
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}

/// The periodic sweep, every `sweep_interval_secs` ± 20 %, until the runtime stops.
pub fn spawn_sweeper(ctx: Arc<Ctx>, runtime: &tokio::runtime::Handle) {
    let interval = ctx.config.connectors.refresh.sweep_interval_secs.max(5);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(jitter(std::time::Duration::from_secs(interval))).await;
            match sweep_once(&ctx).await {
                Ok(report) if report.due > 0 || report.flows_deleted > 0 => {
                    tracing::info!(
                        due = report.due,
                        refreshed = report.refreshed,
                        failed = report.failed,
                        flows_deleted = report.flows_deleted,
                        "refresh sweep"
                    )
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "refresh sweep failed"),
            }
        }
    });
}
