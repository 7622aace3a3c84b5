//! Verify-only JWT machinery shared by the roles that trust the auth role's tokens: the JWKS key
//! source with its cache, the verifier, and the `Caller` extractor. It knows neither role.

pub mod caller;
pub mod error;
pub mod keys;
pub mod unverified;
pub mod verifier;

pub use caller::Caller;
pub use error::TrustError;
pub use keys::{HttpJwksSource, KeySet, KeySource, StaticKeySource, VerifyingKey};
pub use verifier::{Claims, Verifier};
