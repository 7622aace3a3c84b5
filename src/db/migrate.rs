//! Embedded migrations (`migrations/`), and creating the database itself in development.

use crate::platform::config::DatabaseConfig;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use url::Url;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one create-and-migrate step of `serve` and `migrate`: creates the database when
/// `create_if_missing` says so and it does not exist (then calls `created`), and applies
/// pending migrations when `apply`; returns the versions applied.
pub fn prepare(
    db: &DatabaseConfig,
    apply: bool,
    created: impl FnOnce(),
) -> anyhow::Result<Vec<String>> {
    if db.create_if_missing && ensure_database(db)? {
        created();
    }
    if apply { migrate(db) } else { Ok(Vec::new()) }
}

/// Creates the database named in `DATABASE_URL` when the server says it does not exist; returns
/// whether it did. Any other failure to connect is reported as what it is.
fn ensure_database(db: &DatabaseConfig) -> anyhow::Result<bool> {
    let err = match diesel::PgConnection::establish(db.url.expose()) {
        Ok(_) => return Ok(false),
        Err(err) => err,
    };
    let missing =
        matches!(&err, diesel::ConnectionError::BadConnection(m) if m.contains("does not exist"));
    if !missing {
        anyhow::bail!(
            "connecting to the database (DATABASE_URL): {}",
            err.to_string().trim()
        );
    }
    create_database_if_missing(db.url.expose())
        .map_err(|e| anyhow::anyhow!("creating the database named in DATABASE_URL: {e}"))
}

/// Applies pending migrations over a connection of its own.
fn migrate(db: &DatabaseConfig) -> anyhow::Result<Vec<String>> {
    let mut conn = diesel::PgConnection::establish(db.url.expose()).map_err(|e| {
        anyhow::anyhow!(
            "connecting to the database (DATABASE_URL): {}",
            e.to_string().trim()
        )
    })?;
    run_pending(&mut conn).map_err(|e| anyhow::anyhow!("migrating: {e}"))
}

/// Applies pending migrations; returns the versions applied.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, BoxError> {
    let applied = conn.run_pending_migrations(MIGRATIONS)?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Reverts every applied migration, newest first (for the up/down/up test).
pub fn revert_all(conn: &mut PgConnection) -> Result<Vec<String>, BoxError> {
    let reverted = conn.revert_all_migrations(MIGRATIONS)?;
    Ok(reverted.iter().map(|v| v.to_string()).collect())
}

/// Splits a database URL into the URL of the server's `postgres` database and the database name.
pub fn maintenance_url(database_url: &str) -> Result<(String, String), BoxError> {
    let mut url = Url::parse(database_url)?;
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty() {
        return Err("the database URL names no database".into());
    }
    url.set_path("/postgres");
    Ok((url.to_string(), name))
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// Creates the database named in `database_url` when it does not exist. Returns whether it did.
pub fn create_database_if_missing(database_url: &str) -> Result<bool, BoxError> {
    let (admin_url, name) = maintenance_url(database_url)?;
    let mut admin = PgConnection::establish(&admin_url)?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&name)
            .get_result(&mut admin)?;
    if found.exists {
        return Ok(false);
    }
    diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(&name))).execute(&mut admin)?;
    Ok(true)
}

/// Quotes an SQL identifier (database names cannot be bound as parameters).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
