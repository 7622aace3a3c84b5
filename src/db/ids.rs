//! Typed identifiers for the rows both roles key on: a [`UserId`] cannot be passed where a
//! [`SessionId`] or [`ConnectionId`] is wanted. Each is a `text` column to diesel, a plain JSON
//! string to serde (`transparent`), and a string in the OpenAPI document (fields that carry one
//! say `#[schema(value_type = String)]`), so neither the database nor the wire changes.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident($field:vis String)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        #[serde(transparent)]
        pub struct $name($field String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <String as FromSql<Text, Pg>>::from_sql(bytes).map(Self)
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(&self.0, out)
            }
        }
    };
}

text_id!(
    /// `user.id` (and every `user_id` column that points at it).
    UserId(String)
);
text_id!(
    /// `session.id`: the row, not the bearer token.
    SessionId(String)
);
text_id!(
    /// `connections.id`. Its field is public: the connector modules and their tests build one
    /// from a path segment or a stored column.
    ConnectionId(pub String)
);

impl UserId {
    /// A fresh random id, as Better Auth makes them.
    pub fn generate() -> Self {
        Self(crate::crypto::random::id())
    }
}

impl SessionId {
    /// A fresh random id, as Better Auth makes them.
    pub fn generate() -> Self {
        Self(crate::crypto::random::id())
    }
}

impl ConnectionId {
    /// A fresh `conn_…` id.
    pub fn generate() -> Self {
        Self(format!("conn_{}", crate::crypto::random::id()))
    }
}

#[cfg(test)]
mod tests {
    use super::UserId;

    #[test]
    fn serialises_as_a_bare_string() {
        let id = UserId::from("u1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"u1\"");
        assert_eq!(serde_json::from_str::<UserId>("\"u1\"").unwrap(), id);
        assert_eq!(id, "u1");
    }
}
