//! `TestDb`: a database per test, cloned from a migrated template on the server at
//! `DATABASE_URL` (default: the local PostgreSQL), dropped when the test ends.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use std::sync::OnceLock;
use switchboard::db::migrate::{self, quote_ident};

/// The server every test database lives on: `DATABASE_URL` names it (its database part is
/// ignored), defaulting to the local PostgreSQL the README describes.
fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn admin_url() -> String {
    migrate::maintenance_url(&server_url())
        .map(|(url, _)| url)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(db: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{db}"));
    url.to_string()
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

fn exists(conn: &mut PgConnection, name: &str) -> bool {
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result::<Exists>(conn)
        .expect("query pg_database")
        .exists
}

/// The template's name carries a digest of every migration, so a changed migration gets a
/// fresh template and a stale one is never reused.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut entries: Vec<_> =
            walk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"));
        entries.sort();
        for path in entries {
            ctx.update(path.to_string_lossy().as_bytes());
            ctx.update(&std::fs::read(&path).expect("read migration"));
        }
        let digest = ctx.finish();
        let hex: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("switchboard_tmpl_{hex}")
    })
}

fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read migrations dir")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Creates the migrated template once per server, under an advisory lock so that parallel
/// test processes never race to build it.
fn ensure_template() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    let name = template_name();
    READY.get_or_init(|| {
        let mut admin = PgConnection::establish(&admin_url()).expect(
            "connect to PostgreSQL (is it running? see README: DATABASE_URL names the server)",
        );
        diesel::sql_query("SELECT pg_advisory_lock(727274)")
            .execute(&mut admin)
            .expect("advisory lock");
        if !exists(&mut admin, name) {
            let building = format!("{name}_building");
            diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&building)
            ))
            .execute(&mut admin)
            .expect("drop half-built template");
            diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(&building)))
                .execute(&mut admin)
                .expect("create template");
            {
                let mut conn =
                    PgConnection::establish(&url_for(&building)).expect("connect template");
                migrate::run_pending(&mut conn).expect("migrate template");
            }
            diesel::sql_query(format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&building),
                quote_ident(name)
            ))
            .execute(&mut admin)
            .expect("publish template");
            diesel::sql_query(format!(
                "ALTER DATABASE {} IS_TEMPLATE true",
                quote_ident(name)
            ))
            .execute(&mut admin)
            .expect("mark template");
        }
        diesel::sql_query("SELECT pg_advisory_unlock(727274)")
            .execute(&mut admin)
            .expect("advisory unlock");
    });
    name
}

pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// A fresh, migrated database of the test's own.
    pub fn new() -> Self {
        let template = ensure_template();
        let name = format!("sb_test_{}", random_suffix());
        let mut admin = PgConnection::establish(&admin_url()).expect("connect to PostgreSQL");
        diesel::sql_query(format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(template)
        ))
        .execute(&mut admin)
        .expect("create test database from template");
        let url = url_for(&name);
        Self { name, url }
    }

    /// An empty database, not migrated (for the migration tests).
    pub fn empty() -> Self {
        let name = format!("sb_test_{}", random_suffix());
        let mut admin = PgConnection::establish(&admin_url()).expect("connect to PostgreSQL");
        diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut admin)
            .expect("create empty test database");
        let url = url_for(&name);
        Self { name, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            ))
            .execute(&mut admin);
        }
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
