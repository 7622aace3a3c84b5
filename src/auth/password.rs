//! Password hashing exactly as Better Auth does it (spec §10): scrypt N=16384, r=16, p=1, a 64-byte
//! key, the password NFKC-normalised, the *hex string* of a 16-byte salt as the salt, stored as
//! `<salt hex>:<key hex>`. Hashing is CPU-heavy (~32 MiB, tens of ms): callers run it on the
//! blocking pool through [`Hasher`], which also bounds how many run at once.

use crate::crypto::hmac::constant_time_eq;
use crate::crypto::random;
use std::sync::Arc;
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

const LOG_N: u8 = 14;
const R: u32 = 16;
const P: u32 = 1;
const KEY_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn derive(password: &str, salt_hex: &str) -> Result<[u8; KEY_LEN], PasswordError> {
    let normalized: String = password.nfkc().collect();
    let params =
        scrypt::Params::new(LOG_N, R, P).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let mut out = [0u8; KEY_LEN];
    scrypt::scrypt(
        normalized.as_bytes(),
        salt_hex.as_bytes(),
        &params,
        &mut out,
    )
    .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(out)
}

/// Hashes a password with a fresh salt. Blocking: call through [`Hasher`].
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = random::hex(16);
    let key = derive(password, &salt)?;
    Ok(format!("{salt}:{}", hex::encode(key)))
}

/// Checks a password against a stored hash. A malformed hash never matches. Blocking.
pub fn verify(password: &str, stored: &str) -> bool {
    let Some((salt, key_hex)) = stored.split_once(':') else {
        // Spend the same time as a real check, so a malformed row is not observable.
        let _ = derive(password, "00000000000000000000000000000000");
        return false;
    };
    match derive(password, salt) {
        Ok(key) => constant_time_eq(hex::encode(key).as_bytes(), key_hex.as_bytes()),
        Err(_) => false,
    }
}

/// A hash no password matches, checked for unknown emails so they cost what a wrong password does.
const DUMMY_HASH: &str = "00000000000000000000000000000000:00";

/// Runs hashing on the blocking pool, at most `permits` at once: each hash holds ~32 MiB and a
/// core, so a burst of sign-ins queues here instead of exhausting memory or starving every other
/// request of CPU.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash(&password)).await?
    }

    /// `stored = None` (unknown user, no credential account) still costs one full derivation.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        self.run(move || match stored {
            Some(stored) => verify(&password, &stored),
            None => {
                let _ = verify(&password, DUMMY_HASH);
                false
            }
        })
        .await
    }
}

/// Password length as JavaScript counts it (UTF-16 code units), which is what Better Auth's
/// 8..=128 bounds mean.
pub fn js_length(password: &str) -> usize {
    password.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors produced by Better Auth itself (spec §10).
    const PLAIN: (&str, &str) = (
        "password123",
        "b670249040eb3ddcbdfee9ed74cf6d67:2dfc0f64ea7b6ac45f9dfabddb8a88c39410f0078f9c77923eeb93b8f49f6ce8d9774ec243aa18f89065a0ef730f474e64f5096a462f1438a89dcfaf374cb27f",
    );
    const UNICODE: (&str, &str) = (
        "Pa\u{0308}sswo\u{0308}rd-\u{2460}",
        "5b12724e50c8dc8ab9c224fc7b47e80f:e11e3bfa6cc05bcf83630088d77ae32dcb26a9a6c2d38e66f12b4ec7b6ce2a7f4c315fcf451cb1f5d588ab1bca0f0b50a9e2598a8c41ffdde7595590340050cf",
    );

    #[test]
    fn better_auth_vectors_verify() {
        assert!(verify(PLAIN.0, PLAIN.1));
        assert!(verify(UNICODE.0, UNICODE.1));
        // NFKC: the composed form of the same password matches too.
        assert!(verify("Pässwörd-1", UNICODE.1));
        assert!(!verify("password124", PLAIN.1));
    }

    #[test]
    fn hashes_have_better_auths_shape_and_verify() {
        let h = hash("correct horse").unwrap();
        let (salt, key) = h.split_once(':').unwrap();
        assert_eq!(salt.len(), 32);
        assert_eq!(key.len(), 128);
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
    }

    #[test]
    fn malformed_hashes_never_match() {
        assert!(!verify("x", "no-colon"));
        assert!(!verify("x", ""));
        assert!(!verify("x", DUMMY_HASH));
    }

    #[test]
    fn length_counts_utf16_units() {
        assert_eq!(js_length("abc"), 3);
        assert_eq!(js_length("😀"), 2);
        assert_eq!(js_length("é"), 1);
    }
}
