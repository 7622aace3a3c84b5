//! Reading rows straight from the test database, to assert what was written.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct OneText {
    #[diesel(sql_type = Nullable<Text>)]
    v: Option<String>,
}

pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(format!("SELECT count(*) AS n FROM {sql}"))
        .get_result::<Count>(conn)
        .unwrap_or_else(|e| panic!("count {sql}: {e}"))
        .n
}

/// The first column of the first row, as text.
pub fn text(conn: &mut PgConnection, sql: &str) -> Option<String> {
    diesel::sql_query(format!("SELECT ({sql})::text AS v"))
        .get_result::<OneText>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .v
}

pub fn exec(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
