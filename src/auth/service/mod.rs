//! The auth role's service layer: what each endpoint does, with plain inputs (a validated body,
//! the [`Client`](crate::auth::state::Client), the signed-in caller) and domain results, no
//! actix types. The handlers parse, call one function here and render its result.

pub mod linked_accounts;
pub mod mail;
pub mod reset;
pub mod session;
pub mod sign;
pub mod social;
pub mod user;
pub mod verification;
