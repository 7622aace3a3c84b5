//! `db::prepared`: a hand-written statement that each connection prepares once, its binds
//! taken in order as with `sql_query`.

use crate::common::TestDb;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use switchboard::db::prepared;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    t: String,
}

fn echo(conn: &mut PgConnection, a: &str, b: Option<i64>) -> String {
    prepared("SELECT $1 || ':' || coalesce($2::text, 'null') || ':' || $1 AS t")
        .bind::<Text, _>(a)
        .bind::<Nullable<BigInt>, _>(b)
        .get_result::<Row>(conn)
        .unwrap()
        .t
}

fn prepared_here(conn: &mut PgConnection, like: &str) -> String {
    diesel::sql_query(
        "SELECT count(*)::text AS t FROM pg_prepared_statements WHERE statement LIKE $1",
    )
    .bind::<Text, _>(like)
    .get_result::<Row>(conn)
    .unwrap()
    .t
}

#[test]
fn a_prepared_statement_is_parsed_once_per_connection_and_binds_in_order() {
    let db = TestDb::empty();
    let mut conn = db.conn();
    assert_eq!(echo(&mut conn, "x", Some(7)), "x:7:x");
    assert_eq!(echo(&mut conn, "y'; --", None), "y'; --:null:y'; --");
    assert_eq!(echo(&mut conn, "z", Some(-1)), "z:-1:z");
    // Three calls, one statement on the server; `sql_query` prepares none of its own.
    assert_eq!(prepared_here(&mut conn, "SELECT $1 || %"), "1");
    assert_eq!(
        prepared_here(&mut conn, "SELECT count(*)::text AS t FROM pg_prepared%"),
        "0"
    );
    // A new connection prepares it again.
    let mut other = db.conn();
    assert_eq!(prepared_here(&mut other, "SELECT $1 || %"), "0");
    assert_eq!(echo(&mut other, "w", None), "w:null:w");
    assert_eq!(prepared_here(&mut other, "SELECT $1 || %"), "1");
}

/// `db::query_in_place` answers the same on the multi-threaded runtime the server runs (where
/// the calling worker runs the statement itself) and on a single-threaded one (where it falls
/// back to the blocking pool), on the pool's own connections.
#[test]
fn query_in_place_runs_on_both_kinds_of_runtime() {
    let db = TestDb::empty();
    let config = crate::common::test_config(&[("DATABASE_URL", db.url())]);
    let pool = switchboard::db::build_pool(&config.database);
    let ask = |pool: switchboard::db::DbPool| async move {
        switchboard::db::query_in_place(&pool, |c| {
            prepared("SELECT $1 || pg_backend_pid()::text AS t")
                .bind::<Text, _>("pid ")
                .get_result::<Row>(c)
        })
        .await
        .unwrap()
        .t
    };
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answers = multi.block_on(async {
        let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(ask(pool.clone()))).collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(answers.len(), 8);
    assert!(answers.iter().all(|a| a.starts_with("pid ")), "{answers:?}");
    let backends: std::collections::HashSet<&String> = answers.iter().collect();
    assert!(
        backends.len() <= config.database.pool_max_size as usize,
        "{} connections for a pool of {}",
        backends.len(),
        config.database.pool_max_size
    );
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(single.block_on(ask(pool.clone())).starts_with("pid "));
}
