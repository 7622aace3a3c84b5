//! What the database holds, read from `information_schema` and the catalogs: tables, columns,
//! constraints and indexes of the current schema.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Int4, Nullable, Text};

#[derive(Debug, Clone, QueryableByName)]
pub struct Column {
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub column_name: String,
    /// `information_schema.columns.data_type`, e.g. `timestamp without time zone`.
    #[diesel(sql_type = Text)]
    pub data_type: String,
    #[diesel(sql_type = Bool)]
    pub nullable: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub column_default: Option<String>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub max_length: Option<i32>,
    /// The type as `format_type` writes it (`character varying(255)`, `timestamp(3) without time
    /// zone`): what a rollback restores.
    #[diesel(sql_type = Text)]
    pub full_type: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Constraint {
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    /// `p`, `u`, `f`, `c`, …
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The constrained columns, comma-separated, in key order.
    #[diesel(sql_type = Text)]
    pub columns: String,
    /// For a foreign key: the referenced table.
    #[diesel(sql_type = Nullable<Text>)]
    pub references: Option<String>,
    /// For a foreign key: `c` is ON DELETE CASCADE.
    #[diesel(sql_type = Text)]
    pub on_delete: String,
    #[diesel(sql_type = Text)]
    pub definition: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Index {
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    /// The indexed columns, comma-separated; empty for an expression index.
    #[diesel(sql_type = Text)]
    pub columns: String,
    #[diesel(sql_type = Bool)]
    pub unique: bool,
    /// Partial or expression index.
    #[diesel(sql_type = Bool)]
    pub special: bool,
    /// Backs a constraint (primary key, unique): handled with the constraint.
    #[diesel(sql_type = Bool)]
    pub backs_constraint: bool,
    #[diesel(sql_type = Text)]
    pub definition: String,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub tables: Vec<String>,
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
}

impl Snapshot {
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    pub fn columns_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Column> + 'a {
        self.columns.iter().filter(move |c| c.table_name == table)
    }

    pub fn constraints_of<'a>(
        &'a self,
        table: &'a str,
    ) -> impl Iterator<Item = &'a Constraint> + 'a {
        self.constraints
            .iter()
            .filter(move |c| c.table_name == table)
    }

    pub fn indexes_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Index> + 'a {
        self.indexes.iter().filter(move |i| i.table_name == table)
    }
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Everything in the current schema (`current_schema()`, normally `public`).
pub fn snapshot(conn: &mut PgConnection) -> QueryResult<Snapshot> {
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .load(conn)?;
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name,
                c.data_type::text AS data_type, c.is_nullable = 'YES' AS nullable,
                c.column_default::text AS column_default,
                c.character_maximum_length::int4 AS max_length,
                format_type(a.atttypid, a.atttypmod) AS full_type
         FROM information_schema.columns c
         JOIN pg_attribute a
           ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass
          AND a.attname = c.column_name
         WHERE c.table_schema = current_schema()
         ORDER BY c.table_name, c.ordinal_position",
    )
    .load(conn)?;
    let constraints: Vec<Constraint> = diesel::sql_query(
        "SELECT rel.relname::text AS table_name, con.conname::text AS name, con.contype::text AS kind,
                coalesce((SELECT string_agg(a.attname::text, ',' ORDER BY k.ord)
                          FROM unnest(con.conkey) WITH ORDINALITY k(n, ord)
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), '') AS columns,
                ref.relname::text AS references,
                con.confdeltype::text AS on_delete,
                pg_get_constraintdef(con.oid) AS definition
         FROM pg_constraint con
         JOIN pg_class rel ON rel.oid = con.conrelid
         LEFT JOIN pg_class ref ON ref.oid = con.confrelid
         WHERE con.connamespace = current_schema()::regnamespace
         ORDER BY 1, 2",
    )
    .load(conn)?;
    let indexes: Vec<Index> = diesel::sql_query(
        "SELECT t.relname::text AS table_name, i.relname::text AS name,
                coalesce((SELECT string_agg(a.attname::text, ',' ORDER BY k.ord)
                          FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(n, ord)
                          JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.n), '') AS columns,
                ix.indisunique AS unique,
                (ix.indpred IS NOT NULL OR ix.indexprs IS NOT NULL) AS special,
                EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid
                        AND c.contype IN ('p', 'u', 'x')) AS backs_constraint,
                pg_get_indexdef(ix.indexrelid) AS definition
         FROM pg_index ix
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_class t ON t.oid = ix.indrelid
         WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
         ORDER BY 1, 2",
    )
    .load(conn)?;
    Ok(Snapshot {
        tables: tables.into_iter().map(|t| t.name).collect(),
        columns,
        constraints,
        indexes,
    })
}
