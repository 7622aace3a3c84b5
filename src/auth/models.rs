//! Rows of Better Auth's tables and their JSON views (camelCase keys, `Date.toJSON()` dates,
//! `null` kept), as its client expects them.

use crate::db::schema::{account, session, user, verification};
use crate::db::{SessionId, UserId};
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

/// `2026-11-25T16:36:52.295Z`: UTC, milliseconds, `Z` — the client turns exactly this into a Date.
pub fn js_date(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ser_date<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&js_date(at))
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize, ToSchema)]
#[diesel(table_name = user, check_for_backend(diesel::pg::Pg))]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub image: Option<String>,
    #[serde(serialize_with = "ser_date")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_date")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub id: UserId,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = user)]
pub struct NewUser<'a> {
    pub id: &'a UserId,
    pub name: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    pub image: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize, ToSchema)]
#[diesel(table_name = session, check_for_backend(diesel::pg::Pg))]
#[serde(rename_all = "camelCase")]
pub struct Session {
    #[serde(serialize_with = "ser_date")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
    pub token: String,
    #[serde(serialize_with = "ser_date")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_date")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = String)]
    pub user_id: UserId,
    #[schema(value_type = String)]
    pub id: SessionId,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = session)]
pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub token: &'a str,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub user_id: &'a UserId,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = account, check_for_backend(diesel::pg::Pg))]
pub struct Account {
    pub id: String,
    pub account_id: String,
    pub provider_id: String,
    pub user_id: UserId,
    pub password: Option<String>,
    pub scope: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new `account` row: a password hash for a credential account, tokens (already sealed) and
/// scope for a provider account.
#[derive(Debug, Insertable)]
#[diesel(table_name = account)]
pub struct NewAccount<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub provider_id: &'a str,
    pub user_id: &'a UserId,
    pub password: Option<&'a str>,
    pub access_token: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub scope: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl<'a> NewAccount<'a> {
    /// The columns every account has, for `user_id`, written at `now`; fill the rest with `..`.
    pub fn new(user_id: &'a UserId, now: DateTime<Utc>) -> Self {
        Self {
            id: "",
            account_id: "",
            provider_id: "",
            user_id,
            password: None,
            access_token: None,
            refresh_token: None,
            access_token_expires_at: None,
            refresh_token_expires_at: None,
            scope: None,
            created_at: now,
            updated_at: now,
        }
    }
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
    #[schema(value_type = String)]
    pub user_id: UserId,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
    pub scopes: Vec<String>,
}

impl From<Account> for AccountView {
    fn from(row: Account) -> Self {
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
            created_at: js_date(&row.created_at),
            updated_at: js_date(&row.updated_at),
            id: row.id,
            account_id: row.account_id,
            provider_id: row.provider_id,
            user_id: row.user_id,
        }
    }
}

/// `update-user`'s changes: `None` leaves a column as it is, `Some(None)` clears `image`.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = user)]
pub struct ProfileUpdate<'a> {
    pub name: Option<&'a str>,
    pub image: Option<Option<&'a str>>,
    pub updated_at: DateTime<Utc>,
}

/// `providerId` of email-and-password accounts.
pub const CREDENTIAL: &str = "credential";

/// `{session, user}` as get-session returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionWithUser {
    pub session: Session,
    pub user: User,
}

/// A row of `verification`: `identifier` (e.g. `reset-password:<token>`) → `value`, until `expires_at`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = verification, check_for_backend(diesel::pg::Pg))]
pub struct Verification {
    pub id: String,
    pub identifier: String,
    pub value: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Verification {
    /// Whether the row is still good at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = verification)]
pub struct NewVerification<'a> {
    pub id: &'a str,
    pub identifier: &'a str,
    pub value: &'a str,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
