//! Cryptographic building blocks both roles share: random identifiers and tokens, HMAC signing
//! with constant-time verification, the versioned AEAD envelope for secrets at rest, and the
//! JWT signature [`jws::Algorithm`].

pub use jws::Algorithm;

pub mod aead;
pub mod hmac;
pub mod jws;
pub mod random;
