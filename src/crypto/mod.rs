//! Cryptographic building blocks both roles share: random identifiers and tokens, HMAC signing
//! with constant-time verification, and the versioned AEAD envelope for secrets at rest.

pub mod aead;
pub mod hmac;
pub mod random;
