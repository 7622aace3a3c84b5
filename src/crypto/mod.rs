//! Cryptographic building blocks both roles share: random identifiers and tokens, HMAC signing
//! with constant-time verification.

pub mod hmac;
pub mod random;
