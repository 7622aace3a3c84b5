//! The `verification` table: `identifier` → `value` until `expires_at` (reset tokens, email
//! change tokens, OAuth state). One row struct ([`Verification`]) and one insert form.

use crate::auth::models::{NewVerification, Verification};
use crate::db::schema::verification;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

pub fn insert_verification(
    conn: &mut PgConnection,
    new: &NewVerification<'_>,
) -> QueryResult<usize> {
    diesel::insert_into(verification::table)
        .values(new)
        .execute(conn)
}

/// The newest unexpired row for `identifier` (Better Auth takes the newest by `createdAt`).
pub fn live_verification(
    conn: &mut PgConnection,
    identifier: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<Verification>> {
    verification::table
        .filter(verification::identifier.eq(identifier))
        .filter(verification::expires_at.gt(now))
        .order(verification::created_at.desc())
        .select(Verification::as_select())
        .first(conn)
        .optional()
}

/// Consumes every row for `identifier` and returns the newest, expired or not: one statement,
/// so of two concurrent consumers exactly one gets it. Whether it is still good is the
/// caller's question ([`Verification::is_live`]): an expired OAuth state still names where its
/// error goes, an expired reset token is just gone.
pub fn take_verification(
    conn: &mut PgConnection,
    identifier: &str,
) -> QueryResult<Option<Verification>> {
    let taken: Vec<Verification> =
        diesel::delete(verification::table.filter(verification::identifier.eq(identifier)))
            .returning(Verification::as_returning())
            .get_results(conn)?;
    Ok(taken.into_iter().max_by_key(|v| v.created_at))
}

pub fn purge_expired_verifications(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(verification::table.filter(verification::expires_at.le(now))).execute(conn)
}

/// The newest row for `identifier`, expired or not, left in place (an expired OAuth state
/// still names where its error goes).
pub fn newest_verification(
    conn: &mut PgConnection,
    identifier: &str,
) -> QueryResult<Option<Verification>> {
    verification::table
        .filter(verification::identifier.eq(identifier))
        .order(verification::created_at.desc())
        .select(Verification::as_select())
        .first(conn)
        .optional()
}
