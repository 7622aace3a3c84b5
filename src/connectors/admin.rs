//! `switchboard keys rotate-encryption`: re-seals every sealed column ([`Field::ALL`]: OAuth
//! tokens, PKCE verifiers, pending grants, MCP credentials, MCP authorization flows and MCP
//! client secrets) under the current `ENCRYPTION_KEY`, one column at a time, in batches, one
//! transaction per batch (rows locked, so a refresh running meanwhile waits for the batch and
//! then sees the re-sealed values).

use crate::connectors::vault::{Field, Vault};
use crate::db::DbError;
use crate::platform::config::Config;
use anyhow::Context;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

/// What a rotation did to one sealed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnReport {
    pub table: &'static str,
    pub column: &'static str,
    /// Values (not NULL) looked at.
    pub scanned: usize,
    /// Values that were under an older key and now are under the current one.
    pub resealed: usize,
}

/// What a rotation did, column by column. `failed` values did not open under any configured
/// key and were left as they were.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub columns: Vec<ColumnReport>,
    pub failed: usize,
}

impl RotationReport {
    /// The report of `table.column`, if that column is sealed.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnReport> {
        self.columns
            .iter()
            .find(|c| c.table == table && c.column == column)
    }

    /// Values re-sealed across every column.
    pub fn resealed(&self) -> usize {
        self.columns.iter().map(|c| c.resealed).sum()
    }
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.columns {
            writeln!(
                f,
                "{}.{}: scanned {}, re-sealed {}",
                c.table, c.column, c.scanned, c.resealed
            )?;
        }
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

/// The SQL of the row id a column's values are bound to (their AAD), which is also the key a
/// rotation pages by. An exhaustive match: a new sealed [`Field`] does not compile until it is
/// given its row here (and `Field::ALL` lists it).
fn row_key(field: Field) -> &'static str {
    match field {
        Field::AccessToken | Field::RefreshToken => "id",
        Field::CodeVerifier | Field::McpCodeVerifier => "state_hash",
        Field::PendingGrant => "code_hash",
        Field::McpAccessToken | Field::McpRefreshToken => "server_id",
        // `auth_flow::secret_row`: the issuer and the redirect URI, a space between.
        Field::McpClientSecret => "issuer || ' ' || redirect_uri",
    }
}

#[derive(QueryableByName)]
struct SealedRow {
    #[diesel(sql_type = Text)]
    row_id: String,
    #[diesel(sql_type = Text)]
    sealed: String,
}

pub(crate) fn rotate(
    conn: &mut PgConnection,
    vault: &Vault,
    batch_size: usize,
) -> Result<RotationReport, DbError> {
    let limit = batch_size.clamp(1, 10_000);
    let mut report = RotationReport::default();
    for field in Field::ALL {
        let column = rotate_column(conn, vault, field, limit, &mut report.failed)?;
        report.columns.push(column);
    }
    Ok(report)
}

/// Re-seals one column, `limit` rows per transaction, in the order of its row key.
fn rotate_column(
    conn: &mut PgConnection,
    vault: &Vault,
    field: Field,
    limit: usize,
    failed: &mut usize,
) -> Result<ColumnReport, DbError> {
    let (table, column) = field.location();
    let key = row_key(field);
    // Identifiers from the constants above, never from input.
    let page_sql = format!(
        "SELECT ({key}) AS row_id, {column} AS sealed FROM {table} \
         WHERE {column} IS NOT NULL AND ({key}) > $1 ORDER BY ({key}) LIMIT $2 FOR UPDATE"
    );
    let update_sql =
        format!("UPDATE {table} SET {column} = $1 WHERE ({key}) = $2 AND {column} = $3");
    let mut out = ColumnReport {
        table,
        column,
        scanned: 0,
        resealed: 0,
    };
    let mut after = String::new();
    loop {
        let (last, done) = conn.transaction::<_, DbError, _>(|c| {
            let page: Vec<SealedRow> = diesel::sql_query(&page_sql)
                .bind::<Text, _>(&after)
                .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(500))
                .load(c)?;
            for r in &page {
                out.scanned += 1;
                if let Some(new) = reseal(vault, field, &r.row_id, &r.sealed, failed) {
                    out.resealed += diesel::sql_query(&update_sql)
                        .bind::<Text, _>(&new)
                        .bind::<Text, _>(&r.row_id)
                        .bind::<Text, _>(&r.sealed)
                        .execute(c)?;
                }
            }
            Ok((page.last().map(|r| r.row_id.clone()), page.len() < limit))
        })?;
        if let Some(last) = last {
            after = last;
        }
        if done {
            return Ok(out);
        }
    }
}

/// The value re-sealed under the current key, or `None` if it already is (or cannot open).
fn reseal(
    vault: &Vault,
    field: Field,
    row: &str,
    sealed: &str,
    failed: &mut usize,
) -> Option<String> {
    if !vault.needs_rotation(sealed) {
        return None;
    }
    match vault.reseal(field, row, sealed) {
        Ok(new) => Some(new),
        Err(err) => {
            // The row id is not secret; the value is never printed.
            tracing::error!(row, ?field, error = %err, "cannot re-seal a stored value");
            *failed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sealed_field_is_listed_once_with_a_row_key() {
        let mut seen = std::collections::HashSet::new();
        for field in Field::ALL {
            assert!(seen.insert(field.location()), "{field:?} listed twice");
            assert!(!row_key(field).is_empty());
        }
        // The MCP columns the first version of this command forgot.
        for location in [
            ("mcp_credentials", "access_token"),
            ("mcp_credentials", "refresh_token"),
            ("mcp_auth_flows", "code_verifier"),
            ("mcp_oauth_clients", "client_secret"),
        ] {
            assert!(seen.contains(&location), "{location:?} is not rotated");
        }
    }
}
