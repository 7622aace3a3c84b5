//! [`prepared`]: `diesel::sql_query` for a statement whose text is fixed at compile time, so
//! that each connection prepares it once and reuses it.
//!
//! diesel never caches a `sql_query` statement (its text may be built at run time), so
//! PostgreSQL parses and plans it on every call: for the data-modifying CTEs of the agent loop
//! and the job queue that is most of the statement's time (parse and bind 0.3-0.45 ms each
//! against 0.4 ms of execution, in PostgreSQL's own log). A `&'static str` cannot grow the
//! per-connection cache without bound, which is diesel's reason not to cache `sql_query`.
//!
//! The text keeps its `$n` parameters; the binds go after it, in order, as with `sql_query`.
//! diesel writes a placeholder for each bind it collects, and the only public way to collect
//! one writes it: here they land in a trailing line comment (`-- binds: $1$2…`), which
//! PostgreSQL ignores.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use std::marker::PhantomData;

/// A hand-written statement that diesel prepares once per connection.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement runs only when executed or loaded"]
pub struct Prepared(&'static str);

pub fn prepared(sql: &'static str) -> Prepared {
    Prepared(sql)
}

/// A [`Prepared`] statement with one more parameter bound.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement runs only when executed or loaded"]
pub struct Bound<Q, V, ST> {
    query: Q,
    value: V,
    sql_type: PhantomData<ST>,
}

impl Prepared {
    /// Binds `$1` (then [`Bound::bind`] the next one).
    pub fn bind<ST, V>(self, value: V) -> Bound<Self, V, ST> {
        Bound {
            query: self,
            value,
            sql_type: PhantomData,
        }
    }
}

impl<Q, V, ST> Bound<Q, V, ST> {
    /// Binds the next parameter.
    pub fn bind<ST2, V2>(self, value: V2) -> Bound<Self, V2, ST2> {
        Bound {
            query: self,
            value,
            sql_type: PhantomData,
        }
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.0);
        out.push_sql("\n-- binds: ");
        Ok(())
    }
}

impl<Q, V, ST> QueryFragment<Pg> for Bound<Q, V, ST>
where
    Q: QueryFragment<Pg>,
    V: ToSql<ST, Pg>,
    Pg: HasSqlType<ST>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_bind_param::<ST, V>(&self.value)
    }
}

// No static query id: diesel's statement cache keys these by their text (and bind types).
impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, V, ST> QueryId for Bound<Q, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl<Q, V, ST> Query for Bound<Q, V, ST> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Prepared {}
impl<Q, V, ST, Conn> RunQueryDsl<Conn> for Bound<Q, V, ST> {}
