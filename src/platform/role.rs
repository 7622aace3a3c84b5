//! The two roles this binary can play, and which of them were compiled in.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Auth,
    Connectors,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Connectors => "connectors",
        }
    }

    /// Whether this binary was built with the role's Cargo feature.
    pub fn compiled_in(self) -> bool {
        match self {
            Self::Auth => cfg!(feature = "auth"),
            Self::Connectors => cfg!(feature = "connectors"),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
