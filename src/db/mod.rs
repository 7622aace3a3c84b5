//! The database layer both roles share: the generated schema, the r2d2 pool, embedded
//! migrations, and the mapping from diesel errors to [`DbError`].

pub mod adopt;
pub mod error;
pub mod ids;
pub mod migrate;
pub mod pool;
pub mod prepared;
pub mod schema;

pub use error::DbError;
pub use ids::{ConnectionId, SessionId, UserId};
pub use pool::{DbPool, build_pool, query, query_in_place, run};
pub use prepared::prepared;
