//! Migrations are reversible: up, down, up leaves the same schema as up alone.

use crate::common::TestDb;
use diesel::prelude::*;
use diesel::sql_types::Text;
use switchboard::db::migrate;

#[derive(QueryableByName, Debug, PartialEq)]
struct Column {
    #[diesel(sql_type = Text)]
    description: String,
}

/// Every column, constraint and index in `public`, as text, in a stable order.
fn schema_of(conn: &mut PgConnection) -> Vec<String> {
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS description
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'
         UNION ALL
         SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '__diesel_schema_migrations'
         UNION ALL
         SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'
         ORDER BY 1",
    )
    .load(conn)
    .unwrap();
    columns.into_iter().map(|c| c.description).collect()
}

#[test]
fn migrations_run_up_down_up() {
    let db = TestDb::empty();
    let mut conn = db.conn();

    let applied = migrate::run_pending(&mut conn).unwrap();
    assert!(!applied.is_empty());
    let after_up = schema_of(&mut conn);
    assert!(
        after_up.iter().any(|c| c == "user.email text NO "),
        "{after_up:#?}"
    );
    assert!(
        after_up
            .iter()
            .any(|c| c.contains("session_token_key UNIQUE (token)"))
    );
    assert!(
        after_up
            .iter()
            .any(|c| c.contains("FOREIGN KEY (user_id) REFERENCES \"user\"(id) ON DELETE CASCADE"))
    );
    assert!(after_up.iter().any(|c| c.contains("session_userId_idx")));

    let reverted = migrate::revert_all(&mut conn).unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(
        schema_of(&mut conn).is_empty(),
        "down left something behind"
    );

    migrate::run_pending(&mut conn).unwrap();
    assert_eq!(schema_of(&mut conn), after_up);
    assert!(
        migrate::run_pending(&mut conn).unwrap().is_empty(),
        "nothing left to apply"
    );
}

#[test]
fn timestamps_are_timestamptz() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let schema = schema_of(&mut conn);
    // Column lines only ("table.column type …"): an index or constraint line may name a
    // timestamp column too.
    let stamps: Vec<_> = schema
        .iter()
        .filter(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|name| name.contains('.') && name.ends_with("_at"))
        })
        .collect();
    assert!(!stamps.is_empty());
    for column in stamps {
        assert!(column.contains("timestamp with time zone"), "{column}");
    }
}
