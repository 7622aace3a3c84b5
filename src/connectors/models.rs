//! Rows of the connectors tables, the forms that write them, and the views clients see. A view
//! never carries a token: tokens leave the vault only through `refresh::access_token`.

use crate::db::ids::UserId;
use crate::db::schema::{connections, oauth_flows};
use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::db::ConnectionId;

/// Where a connection stands: the `status` text column, read and written as this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Tokens work and are kept fresh.
    Active,
    /// The provider refused the refresh token (`invalid_grant`): the user must connect again.
    NeedsReauth,
    /// The grant was withdrawn at the provider.
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
            Self::Revoked => "revoked",
        }
    }

    /// An unknown value reads as `Revoked`: such a connection is never used.
    pub fn parse(value: &str) -> Self {
        match value {
            "active" => Self::Active,
            "needs_reauth" => Self::NeedsReauth,
            _ => Self::Revoked,
        }
    }
}

impl FromSql<Text, Pg> for Status {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <String as FromSql<Text, Pg>>::from_sql(bytes).map(|s| Self::parse(&s))
    }
}

impl ToSql<Text, Pg> for Status {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = connections, check_for_backend(diesel::pg::Pg))]
pub struct ConnectionRow {
    pub id: ConnectionId,
    #[expect(dead_code, reason = "selected with the row; queries filter on it")]
    pub owner_id: UserId,
    pub provider: String,
    pub external_account_id: String,
    pub external_org_id: Option<String>,
    pub display_name: String,
    pub account: serde_json::Value,
    pub scopes: Vec<Option<String>>,
    pub status: Status,
    /// Sealed.
    pub access_token: String,
    /// Sealed.
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_failures: i32,
    pub next_refresh_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ConnectionRow {
    pub fn status(&self) -> Status {
        self.status
    }
}

#[derive(Debug, Insertable, AsChangeset)]
#[diesel(table_name = connections)]
pub struct ConnectionForm {
    pub id: ConnectionId,
    pub owner_id: UserId,
    pub provider: String,
    pub external_account_id: String,
    pub external_org_id: Option<String>,
    pub display_name: String,
    pub account: serde_json::Value,
    pub scopes: Vec<Option<String>>,
    pub status: Status,
    pub access_token: String,
    #[diesel(treat_none_as_null = true)]
    pub refresh_token: Option<String>,
    #[diesel(treat_none_as_null = true)]
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_failures: i32,
    #[diesel(treat_none_as_null = true)]
    pub next_refresh_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_flows, check_for_backend(diesel::pg::Pg))]
pub struct FlowRow {
    pub state_hash: String,
    pub owner_id: UserId,
    pub provider: String,
    /// Sealed.
    pub code_verifier: String,
    pub redirect_to: Option<String>,
    pub scopes: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// A connection as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: String,
    /// The provider id, e.g. `linear`.
    pub provider: String,
    pub status: Status,
    /// E.g. `"Acme (acme)"` for a Linear workspace, the login for GitHub.
    pub display_name: String,
    /// The account at the provider (Linear: the viewer, per workspace and actor).
    pub account_id: String,
    /// The organization at the provider (Linear: the workspace), if it has one.
    pub organization_id: Option<String>,
    /// Display fields as the provider named them.
    #[schema(value_type = Object)]
    pub account: serde_json::Value,
    pub scopes: Vec<String>,
    /// When the stored access token expires; `null` if it does not.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ConnectionRow> for ConnectionView {
    fn from(row: ConnectionRow) -> Self {
        Self {
            status: row.status(),
            id: row.id.into(),
            provider: row.provider,
            display_name: row.display_name,
            account_id: row.external_account_id,
            organization_id: row.external_org_id,
            account: row.account,
            scopes: row.scopes.into_iter().flatten().collect(),
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Scopes as stored (diesel reads `text[]` with nullable elements).
pub fn scope_column(scopes: &[String]) -> Vec<Option<String>> {
    scopes.iter().cloned().map(Some).collect()
}
