//! The `account` table: email-and-password accounts (`providerId = "credential"`) and provider
//! accounts (GitHub), one row struct ([`Account`]) and one insert form ([`NewAccount`]).

use crate::auth::models::{Account, CREDENTIAL, NewAccount, TokenUpdate};
use crate::db::UserId;
use crate::db::schema::account;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;

/// The user's email-and-password account: `providerId = "credential"`, `accountId = user.id`.
pub fn credential_account(
    conn: &mut PgConnection,
    user_id: &UserId,
) -> QueryResult<Option<Account>> {
    account::table
        .filter(account::user_id.eq(user_id))
        .filter(account::provider_id.eq(CREDENTIAL))
        .filter(account::account_id.eq(user_id))
        .select(Account::as_select())
        .first(conn)
        .optional()
}

pub fn insert_account(conn: &mut PgConnection, new: &NewAccount<'_>) -> QueryResult<usize> {
    diesel::insert_into(account::table)
        .values(new)
        .execute(conn)
}

/// The email-and-password account of `user_id` (`accountId = user.id`), with a password hash.
pub fn insert_credential_account(
    conn: &mut PgConnection,
    user_id: &UserId,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    insert_account(
        conn,
        &NewAccount {
            id: &crate::crypto::random::id(),
            account_id: user_id,
            provider_id: CREDENTIAL,
            password: Some(hash),
            ..NewAccount::new(user_id, now)
        },
    )
}

pub fn set_password(
    conn: &mut PgConnection,
    account_id: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(account::table.find(account_id))
        .set((account::password.eq(hash), account::updated_at.eq(now)))
        .execute(conn)
}

/// Serialises every decision about one provider account until the transaction ends, so two
/// callbacks for the same GitHub user cannot both create (or link) its account: the table has
/// no unique constraint on (provider, account id), as in Better Auth.
pub fn lock_provider_account(
    conn: &mut PgConnection,
    provider_id: &str,
    account_id: &str,
) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
        .bind::<Text, _>(format!("account:{provider_id}:{account_id}"))
        .execute(conn)
        .map(|_| ())
}

pub fn provider_account(
    conn: &mut PgConnection,
    provider_id: &str,
    account_id: &str,
) -> QueryResult<Option<Account>> {
    account::table
        .filter(account::provider_id.eq(provider_id))
        .filter(account::account_id.eq(account_id))
        .order(account::created_at.asc())
        .select(Account::as_select())
        .first(conn)
        .optional()
}

pub fn accounts_of(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<Vec<Account>> {
    account::table
        .filter(account::user_id.eq(user_id))
        .order((account::created_at.asc(), account::id.asc()))
        .select(Account::as_select())
        .load(conn)
}

pub fn update_tokens(
    conn: &mut PgConnection,
    id: &str,
    update: &TokenUpdate<'_>,
) -> QueryResult<usize> {
    diesel::update(account::table.find(id))
        .set(update)
        .execute(conn)
}

/// Deletes the account only if it belongs to `user_id`.
pub fn delete_account(conn: &mut PgConnection, user_id: &UserId, id: &str) -> QueryResult<usize> {
    diesel::delete(
        account::table
            .filter(account::id.eq(id))
            .filter(account::user_id.eq(user_id)),
    )
    .execute(conn)
}
