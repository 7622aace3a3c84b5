//! Pending grants: what an authorization produced at the provider's callback (tokens, the
//! account), held until the user who started the flow redeems it with their own bearer token.
//!
//! The callback runs in whatever browser reached it, with no identity of ours: finishing the
//! flow there would attach the account to the flow's owner even when someone else's browser
//! approved it (a connect link sent to a victim). So the callback only [`issue`]s a one-time,
//! short-lived code; redeeming it ([`take`]) needs the flow owner's bearer token, and any other
//! caller destroys it. Generic over what is pending (`Kind`), so the MCP authorization flow
//! follows the same rule.

use crate::connectors::error::ConnectorsError;
use crate::connectors::oauth;
use crate::connectors::vault::{Field, Plain, Vault};
use crate::crypto::hmac::constant_time_eq;
use crate::db::ids::UserId;
use crate::db::schema::pending_grants;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

/// How long a code stays redeemable: the web app redeems it right after the redirect.
pub const TTL_SECS: i64 = 300;

/// What a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A provider connection; the subject is the provider id.
    Connection,
    /// An MCP server's OAuth credential; the subject is the server id.
    McpServer,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::McpServer => "mcp_server",
        }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = pending_grants, check_for_backend(diesel::pg::Pg))]
struct GrantRow {
    code_hash: String,
    owner_id: UserId,
    kind: String,
    subject: String,
    /// Sealed.
    payload: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A freshly issued code: hand it to the browser, once.
#[derive(Debug)]
pub struct Issued {
    pub code: Plain,
    pub expires_at: DateTime<Utc>,
}

/// Stores `payload` sealed for `owner` and returns the one-time code. Only the code's SHA-256
/// is stored, so a database reader cannot redeem anything.
pub fn issue(
    conn: &mut PgConnection,
    vault: &Vault,
    owner: &UserId,
    kind: Kind,
    subject: &str,
    payload: &Plain,
    now: DateTime<Utc>,
) -> Result<Issued, ConnectorsError> {
    let code = oauth::new_state();
    let code_hash = oauth::state_hash(code.expose());
    let expires_at = now + Duration::seconds(TTL_SECS);
    let row = GrantRow {
        payload: vault.seal(Field::PendingGrant, &code_hash, payload)?,
        code_hash,
        owner_id: owner.to_owned(),
        kind: kind.as_str().to_owned(),
        subject: subject.to_owned(),
        created_at: now,
        expires_at,
    };
    diesel::insert_into(pending_grants::table)
        .values(&row)
        .execute(conn)?;
    Ok(Issued { code, expires_at })
}

/// What redeeming a code found. The grant is deleted in every case but `NotFound`: a code
/// works once, and a wrong caller burns it.
pub enum Taken {
    /// The caller's own, in time.
    Granted { subject: String, payload: Plain },
    /// No such code (never issued, already used, or swept).
    NotFound,
    /// The caller's own, too late.
    Expired,
    /// Someone else's: refused and destroyed. The payload is returned so the caller can
    /// withdraw what it grants at the provider.
    Foreign { subject: String, payload: Plain },
}

/// Takes the grant behind `code` out of the table (in the caller's transaction) and checks it
/// belongs to `caller`.
pub fn take(
    conn: &mut PgConnection,
    vault: &Vault,
    caller: &UserId,
    kind: Kind,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Taken, ConnectorsError> {
    if code.is_empty() || code.len() > 256 {
        return Ok(Taken::NotFound);
    }
    let hash = oauth::state_hash(code);
    let row: Option<GrantRow> = diesel::delete(
        pending_grants::table
            .filter(pending_grants::code_hash.eq(&hash))
            .filter(pending_grants::kind.eq(kind.as_str())),
    )
    .returning(GrantRow::as_returning())
    .get_result(conn)
    .optional()?;
    let Some(row) = row else {
        return Ok(Taken::NotFound);
    };
    let payload = vault.open(Field::PendingGrant, &row.code_hash, &row.payload)?;
    if !constant_time_eq(row.owner_id.as_bytes(), caller.as_bytes()) {
        return Ok(Taken::Foreign {
            subject: row.subject,
            payload,
        });
    }
    if row.expires_at <= now {
        return Ok(Taken::Expired);
    }
    Ok(Taken::Granted {
        subject: row.subject,
        payload,
    })
}

/// Grants that expired before `before` (never redeemed).
pub fn delete_expired(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(pending_grants::table.filter(pending_grants::expires_at.lt(before)))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_random_and_stored_only_as_hashes() {
        let a = oauth::new_state();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(oauth::state_hash(a.expose()), a.expose());
        assert_eq!(oauth::state_hash(a.expose()).len(), 64);
    }
}
