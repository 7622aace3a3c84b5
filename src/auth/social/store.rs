//! Queries of the social flows: OAuth state in `verification`, provider accounts in `account`.
//! Each takes `&mut PgConnection`, so the linking decision runs in one transaction.

use crate::db::schema::{account, session, verification};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde::Serialize;
use utoipa::ToSchema;

/// An `account` row without its secrets: what `list-accounts` shows and the flows decide on.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = account, check_for_backend(diesel::pg::Pg))]
pub struct AccountRow {
    pub id: String,
    pub account_id: String,
    pub provider_id: String,
    pub user_id: String,
    pub scope: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A provider account as written by the OAuth callback; tokens already sealed.
#[derive(Debug, Insertable)]
#[diesel(table_name = account)]
pub struct NewProviderAccount<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub provider_id: &'a str,
    pub user_id: &'a str,
    pub access_token: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub scope: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fresh tokens for an existing account. `None` keeps what is stored (GitHub OAuth apps send
/// no refresh token; Better Auth does not erase one it has).
#[derive(Debug, AsChangeset)]
#[diesel(table_name = account)]
pub struct TokenUpdate<'a> {
    pub access_token: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub scope: Option<&'a str>,
    pub updated_at: DateTime<Utc>,
}

/// `list-accounts` item (spec §6.18): every non-secret column, `scope` split into `scopes`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub account_id: String,
    pub provider_id: String,
    pub user_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
    pub scopes: Vec<String>,
}

impl From<AccountRow> for AccountView {
    fn from(row: AccountRow) -> Self {
        Self {
            scopes: row
                .scope
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            created_at: crate::auth::models::js_date(&row.created_at),
            updated_at: crate::auth::models::js_date(&row.updated_at),
            id: row.id,
            account_id: row.account_id,
            provider_id: row.provider_id,
            user_id: row.user_id,
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = verification, check_for_backend(diesel::pg::Pg))]
pub struct VerificationRow {
    pub value: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub fn insert_verification(
    conn: &mut PgConnection,
    id: &str,
    identifier: &str,
    value: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::insert_into(verification::table)
        .values((
            verification::id.eq(id),
            verification::identifier.eq(identifier),
            verification::value.eq(value),
            verification::expires_at.eq(expires_at),
            verification::created_at.eq(now),
            verification::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Consumes every row for `identifier` in one statement and returns the newest: two requests
/// racing with the same state cannot both get it.
pub fn take_verification(
    conn: &mut PgConnection,
    identifier: &str,
) -> QueryResult<Option<VerificationRow>> {
    let rows: Vec<VerificationRow> =
        diesel::delete(verification::table.filter(verification::identifier.eq(identifier)))
            .returning(VerificationRow::as_returning())
            .get_results(conn)?;
    Ok(rows.into_iter().max_by_key(|r| r.created_at))
}

/// The newest row for `identifier`, left in place.
pub fn peek_verification(
    conn: &mut PgConnection,
    identifier: &str,
) -> QueryResult<Option<VerificationRow>> {
    verification::table
        .filter(verification::identifier.eq(identifier))
        .order(verification::created_at.desc())
        .select(VerificationRow::as_select())
        .first(conn)
        .optional()
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
) -> QueryResult<Option<AccountRow>> {
    account::table
        .filter(account::provider_id.eq(provider_id))
        .filter(account::account_id.eq(account_id))
        .order(account::created_at.asc())
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Locks the user's row until the transaction ends: decisions that count a user's accounts
/// (unlink never removes the last one) run one at a time per user, so two concurrent unlinks of
/// a user's two accounts cannot both see "two left".
pub fn lock_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<bool> {
    crate::db::schema::user::table
        .find(user_id)
        .select(crate::db::schema::user::id)
        .for_update()
        .first::<String>(conn)
        .optional()
        .map(|found| found.is_some())
}

pub fn accounts_of(conn: &mut PgConnection, user_id: &str) -> QueryResult<Vec<AccountRow>> {
    account::table
        .filter(account::user_id.eq(user_id))
        .order((account::created_at.asc(), account::id.asc()))
        .select(AccountRow::as_select())
        .load(conn)
}

pub fn insert_provider_account(
    conn: &mut PgConnection,
    new: &NewProviderAccount<'_>,
) -> QueryResult<usize> {
    diesel::insert_into(account::table)
        .values(new)
        .execute(conn)
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
pub fn delete_account(conn: &mut PgConnection, user_id: &str, id: &str) -> QueryResult<usize> {
    diesel::delete(
        account::table
            .filter(account::id.eq(id))
            .filter(account::user_id.eq(user_id)),
    )
    .execute(conn)
}

/// Whether the session with this id still exists, is unexpired and belongs to `user_id`.
pub fn session_alive(
    conn: &mut PgConnection,
    session_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        session::table
            .filter(session::id.eq(session_id))
            .filter(session::user_id.eq(user_id))
            .filter(session::expires_at.gt(now)),
    ))
    .get_result(conn)
}
