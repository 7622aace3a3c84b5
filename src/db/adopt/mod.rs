//! `switchboard db adopt`: take over a database Better Auth created (its own migrator, a Drizzle
//! or Prisma schema, custom table names, extra columns), turning it into switchboard's layout in
//! one transaction and recording the first migration as applied, so `migrate` continues.
//!
//! Reads the catalogs ([`inspect`]), plans ([`plan`]), refuses what it cannot adopt with a
//! message that says what it found and what to do, and can print the SQL that undoes the plan.

pub mod inspect;
pub mod plan;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use plan::{Inputs, Plan, lit};
use std::collections::BTreeMap;

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Print the SQL that undoes the plan, change nothing.
    pub print_rollback: bool,
    /// `user=users,session=sessions`: Better Auth models kept under other table names.
    pub table_map: Vec<String>,
    /// The zone `timestamp without time zone` values were written in.
    pub source_zone: String,
    /// Refuse when a session or user row was written less than this many seconds ago.
    pub quiet_secs: u32,
    /// Adopt even while other clients are connected to the database.
    pub allow_connections: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dry_run: false,
            print_rollback: false,
            table_map: Vec::new(),
            source_zone: "UTC".to_owned(),
            quiet_secs: 60,
            allow_connections: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The database is not in a state the command adopts; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// Applying failed; the transaction was rolled back, nothing was changed.
    #[error("adoption failed and was rolled back, nothing changed: {0}")]
    Failed(String),
    #[error("reading the database: {0}")]
    Db(#[from] diesel::result::Error),
}

/// What the command did.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    /// The first migration's version, recorded as applied.
    pub version: String,
    pub applied: bool,
    /// Warnings that refuse an apply but not a dry run (busy database).
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn rollback_sql(&self) -> String {
        self.plan.rollback(&self.version)
    }
}

/// The version of the migration whose layout an adopted database equals.
pub fn adopted_version() -> Result<String, AdoptError> {
    let migrations = MigrationSource::<Pg>::migrations(&crate::db::migrate::MIGRATIONS)
        .map_err(|e| AdoptError::Failed(e.to_string()))?;
    let mut versions: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    versions
        .into_iter()
        .next()
        .ok_or_else(|| AdoptError::Failed("no migrations embedded".to_owned()))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct Clients {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    names: String,
}

/// Inspects, plans, and (unless a dry run or `print_rollback`) applies in one transaction.
pub fn run(conn: &mut PgConnection, options: &Options) -> Result<Outcome, AdoptError> {
    let zone = options.source_zone.trim();
    let known: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_timezone_names WHERE name = $1 OR abbrev = $1",
    )
    .bind::<Text, _>(zone)
    .get_result(conn)?;
    if known.n == 0 && !zone.eq_ignore_ascii_case("utc") {
        return Err(AdoptError::Refused(format!(
            "--source-zone `{zone}` is not a time zone PostgreSQL knows (e.g. UTC, Europe/Berlin)"
        )));
    }

    let migrated: Flag = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename = '__diesel_schema_migrations') AS flag",
    )
    .get_result(conn)?;
    if migrated.flag {
        let rows: Count = diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
            .get_result(conn)?;
        if rows.n > 0 {
            return Err(AdoptError::Refused(format!(
                "switchboard's schema is already here ({} migrations recorded in \
                 __diesel_schema_migrations): nothing to adopt; run `switchboard migrate`",
                rows.n
            )));
        }
    }

    let snapshot = inspect::snapshot(conn)?;
    let table_map =
        plan::parse_table_map(&options.table_map).map_err(|r| AdoptError::Refused(r.0))?;
    let version = adopted_version()?;
    let plan = plan::build(&Inputs {
        snapshot: &snapshot,
        table_map: &table_map,
        source_zone: zone,
        version: &version,
    })
    .map_err(|r| AdoptError::Refused(r.0))?;

    let mut outcome = Outcome {
        plan,
        version,
        applied: false,
        warnings: Vec::new(),
    };
    if options.print_rollback {
        return Ok(outcome);
    }
    outcome.warnings = busy(conn, &snapshot, &outcome.plan.tables, options)?;
    if options.dry_run {
        return Ok(outcome);
    }
    if let Some(first) = outcome.warnings.first() {
        return Err(AdoptError::Refused(first.clone()));
    }
    apply(conn, &outcome.plan)?;
    outcome.applied = true;
    Ok(outcome)
}

/// Signs that the old service is still running: other clients connected, recent writes.
fn busy(
    conn: &mut PgConnection,
    snapshot: &inspect::Snapshot,
    tables: &BTreeMap<&'static str, String>,
    options: &Options,
) -> Result<Vec<String>, AdoptError> {
    let mut warnings = Vec::new();
    if !options.allow_connections {
        let others: Clients = diesel::sql_query(
            "SELECT count(*) AS n, coalesce(string_agg(DISTINCT coalesce(nullif(application_name, ''), \
             'unnamed') || '@' || coalesce(host(client_addr), 'local'), ', '), '') AS names \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
        )
        .get_result(conn)?;
        if others.n > 0 {
            warnings.push(format!(
                "the database is in use: {} other connection(s) ({}). Stop the old auth service \
                 first (and anything else connected), then adopt; --allow-connections adopts \
                 anyway",
                others.n, others.names
            ));
        }
    }
    if options.quiet_secs > 0 {
        for (model, field_names) in [
            ("session", ["updatedAt", "updated_at"]),
            ("user", ["updatedAt", "updated_at"]),
        ] {
            let Some(table) = tables.get(model) else {
                continue;
            };
            let Some(col) = snapshot
                .columns_of(table)
                .find(|c| field_names.contains(&c.column_name.as_str()))
            else {
                continue;
            };
            let now = if col.data_type == "timestamp with time zone" {
                "now()".to_owned()
            } else {
                format!("(now() AT TIME ZONE {})", lit(options.source_zone.trim()))
            };
            let recent: Flag = diesel::sql_query(format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {} > {now} - make_interval(secs => {})) AS flag",
                crate::db::migrate::quote_ident(table),
                crate::db::migrate::quote_ident(&col.column_name),
                options.quiet_secs
            ))
            .get_result(conn)?;
            if recent.flag {
                warnings.push(format!(
                    "the old service is still writing: a `{table}` row was updated less than {} s \
                     ago. Stop the old auth service first, wait {} s, then adopt (--quiet-secs 0 \
                     skips this check)",
                    options.quiet_secs, options.quiet_secs
                ));
            }
        }
    }
    Ok(warnings)
}

/// Every step in one transaction, after locking the tables without waiting.
fn apply(conn: &mut PgConnection, plan: &Plan) -> Result<(), AdoptError> {
    conn.transaction::<(), AdoptError, _>(|tx| {
        let existing: Vec<String> = plan
            .tables
            .values()
            .map(|t| crate::db::migrate::quote_ident(t))
            .collect();
        let snapshot = inspect::snapshot(tx)?;
        let locked: Vec<&String> = existing
            .iter()
            .zip(plan.tables.values())
            .filter(|(_, t)| snapshot.has_table(t))
            .map(|(q, _)| q)
            .collect();
        if !locked.is_empty() {
            let sql = format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT",
                locked
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            tx.batch_execute(&sql).map_err(|e| {
                AdoptError::Refused(format!(
                    "the Better Auth tables are in use ({e}); stop the old auth service first, \
                     then adopt"
                ))
            })?;
        }
        for step in &plan.steps {
            tx.batch_execute(&step.sql)
                .map_err(|e| AdoptError::Failed(format!("at \"{}\": {e}", step.what)))?;
        }
        Ok(())
    })
}
