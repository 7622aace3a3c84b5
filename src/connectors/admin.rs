//! `switchboard keys rotate-encryption`: re-seals every stored token, PKCE verifier and pending
//! grant under the
//! current `ENCRYPTION_KEY`, in batches, one transaction per batch (rows locked, so a refresh
//! running meanwhile waits for the batch and then sees the re-sealed values).

use crate::connectors::vault::{Field, Vault};
use crate::connectors::{ConnectionId, pending, store};
use crate::db::DbError;
use crate::platform::config::Config;
use anyhow::Context;
use diesel::{Connection, PgConnection};

/// What a rotation did. `failed` values did not open under any configured key and were left
/// as they were.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RotationReport {
    pub connections_scanned: usize,
    pub tokens_resealed: usize,
    pub flows_scanned: usize,
    pub verifiers_resealed: usize,
    pub grants_scanned: usize,
    pub grants_resealed: usize,
    pub failed: usize,
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "connections scanned: {}, tokens re-sealed: {}",
            self.connections_scanned, self.tokens_resealed
        )?;
        writeln!(
            f,
            "oauth flows scanned: {}, verifiers re-sealed: {}",
            self.flows_scanned, self.verifiers_resealed
        )?;
        writeln!(
            f,
            "pending grants scanned: {}, grants re-sealed: {}",
            self.grants_scanned, self.grants_resealed
        )?;
        writeln!(f, "failed (left unchanged): {}", self.failed)
    }
}

/// Runs the rotation over its own database connection.
pub fn run(config: &Config, batch_size: usize) -> anyhow::Result<RotationReport> {
    let vault = Vault::from_config(config).context("loading the encryption keys")?;
    let mut conn = PgConnection::establish(config.database.url.expose())
        .context("connecting to the database")?;
    rotate(&mut conn, &vault, batch_size).map_err(|e| anyhow::anyhow!("rotating: {e}"))
}

pub(crate) fn rotate(
    conn: &mut PgConnection,
    vault: &Vault,
    batch_size: usize,
) -> Result<RotationReport, DbError> {
    let limit = i64::try_from(batch_size.clamp(1, 10_000)).unwrap_or(500);
    let mut report = RotationReport::default();
    let mut after = String::new();
    loop {
        let (last, done) = conn.transaction::<_, DbError, _>(|c| {
            let page = store::sealed_page(c, &after, limit)?;
            for (id, access, refresh) in &page {
                report.connections_scanned += 1;
                let new_access = reseal(vault, Field::AccessToken, id, access, &mut report);
                let new_refresh = refresh
                    .as_deref()
                    .map(|r| reseal(vault, Field::RefreshToken, id, r, &mut report));
                let resealed = usize::from(new_access.is_some())
                    + usize::from(new_refresh.as_ref().is_some_and(Option::is_some));
                report.tokens_resealed += resealed;
                if resealed > 0 {
                    let access = new_access.unwrap_or_else(|| access.clone());
                    let refresh = match (new_refresh, refresh) {
                        (Some(Some(new)), _) => Some(new),
                        (_, old) => old.clone(),
                    };
                    store::set_sealed(c, &ConnectionId(id.clone()), &access, refresh.as_deref())?;
                }
            }
            let done = page.len() < usize::try_from(limit).unwrap_or(usize::MAX);
            Ok((page.last().map(|(id, _, _)| id.clone()), done))
        })?;
        if let Some(last) = last {
            after = last;
        }
        if done {
            break;
        }
    }
    let mut after = String::new();
    loop {
        let (last, done) = conn.transaction::<_, DbError, _>(|c| {
            let page = store::flow_page(c, &after, limit)?;
            for (hash, sealed) in &page {
                report.flows_scanned += 1;
                if let Some(new) = reseal(vault, Field::CodeVerifier, hash, sealed, &mut report) {
                    store::set_flow_verifier(c, hash, &new)?;
                    report.verifiers_resealed += 1;
                }
            }
            let done = page.len() < usize::try_from(limit).unwrap_or(usize::MAX);
            Ok((page.last().map(|(h, _)| h.clone()), done))
        })?;
        if let Some(last) = last {
            after = last;
        }
        if done {
            break;
        }
    }
    let mut after = String::new();
    loop {
        let (last, done) = conn.transaction::<_, DbError, _>(|c| {
            let page = pending::sealed_page(c, &after, limit)?;
            for (hash, sealed) in &page {
                report.grants_scanned += 1;
                if let Some(new) = reseal(vault, Field::PendingGrant, hash, sealed, &mut report) {
                    pending::set_sealed(c, hash, &new)?;
                    report.grants_resealed += 1;
                }
            }
            let done = page.len() < usize::try_from(limit).unwrap_or(usize::MAX);
            Ok((page.last().map(|(h, _)| h.clone()), done))
        })?;
        if let Some(last) = last {
            after = last;
        }
        if done {
            break;
        }
    }
    Ok(report)
}

/// The value re-sealed under the current key, or `None` if it already is (or cannot open).
fn reseal(
    vault: &Vault,
    field: Field,
    row: &str,
    sealed: &str,
    report: &mut RotationReport,
) -> Option<String> {
    if !vault.needs_rotation(sealed) {
        return None;
    }
    match vault.reseal(field, row, sealed) {
        Ok(new) => Some(new),
        Err(err) => {
            // The row id is not secret; the value is never printed.
            tracing::error!(row, ?field, error = %err, "cannot re-seal a stored value");
            report.failed += 1;
            None
        }
    }
}
