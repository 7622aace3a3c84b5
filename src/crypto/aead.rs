//! A small versioned AES-256-GCM envelope (ring) for secrets stored in a database column:
//! `v1:` + base64url(nonce ‖ ciphertext ‖ tag), a fresh 96-bit nonce per value, and
//! caller-supplied associated data binding each value to where it is stored.
//!
//! The version prefix lets keys rotate later: a new key gets `v2:`, and `v1:` values stay
//! readable with the old one. Values without a prefix are legacy plaintext (rows written by a
//! system that did not encrypt) and are returned as they are by [`Envelope::open_or_plaintext`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: &str = "v1";
const TAG_LEN: usize = 16;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The value names a key version this process does not hold.
    #[error("unknown envelope version {0:?}")]
    UnknownVersion(String),
    /// Not valid base64, too short, or the tag did not verify (wrong key, wrong associated data,
    /// or tampering): deliberately one error, so a caller cannot tell them apart.
    #[error("the value does not decrypt")]
    Invalid,
    #[error("the system random source failed")]
    Random,
}

/// One key and the version tag its values carry.
#[derive(Clone)]
pub struct Envelope {
    key: LessSafeKey,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Envelope([redacted])")
    }
}

impl Envelope {
    /// An envelope over a raw 256-bit key.
    pub fn new(key: &[u8; 32]) -> Self {
        // A 32-byte key is always a valid AES-256 key; ring only refuses wrong lengths.
        let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// A key derived from a long-lived secret with HKDF-SHA256. `purpose` (the HKDF info)
    /// names what the key is for, so one secret yields independent keys for independent uses.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"switchboard/aead/v1");
        let mut key = [0u8; 32];
        let info = [purpose.as_bytes()];
        // HKDF-SHA256 can produce up to 255 * 32 bytes; 32 never fails.
        salt.extract(secret)
            .expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .unwrap_or_else(|_| unreachable!());
        Self::new(&key)
    }

    /// Encrypts `plaintext`, bound to `aad` (say, the row id and column name).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, AeadError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AeadError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| AeadError::Invalid)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("{VERSION}:{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts a sealed value; refuses unknown versions and anything that does not verify.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, AeadError> {
        let Some((version, body)) = split_version(sealed) else {
            return Err(AeadError::Invalid);
        };
        if version != VERSION {
            return Err(AeadError::UnknownVersion(version.to_owned()));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| AeadError::Invalid)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(AeadError::Invalid);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::Invalid)?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| AeadError::Invalid)?;
        Ok(plain.to_vec())
    }

    /// Reads a stored column: an envelope is decrypted, a value without a version prefix is
    /// legacy plaintext and returned unchanged.
    pub fn open_or_plaintext(&self, stored: &str, aad: &[u8]) -> Result<String, AeadError> {
        if split_version(stored).is_none() {
            return Ok(stored.to_owned());
        }
        String::from_utf8(self.open(stored, aad)?).map_err(|_| AeadError::Invalid)
    }
}

/// `("v1", body)` for a value that starts with `v<digits>:`.
fn split_version(value: &str) -> Option<(&str, &str)> {
    let (version, body) = value.split_once(':')?;
    let digits = version.strip_prefix('v')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope::derive(b"a-long-secret-of-at-least-32-characters", "test")
    }

    #[test]
    fn round_trips_with_a_fresh_nonce_each_time() {
        let e = envelope();
        let a = e.seal(b"gho_secret", b"acc1:access_token").unwrap();
        let b = e.seal(b"gho_secret", b"acc1:access_token").unwrap();
        assert!(a.starts_with("v1:"), "{a}");
        assert_ne!(a, b, "a nonce is never reused");
        assert!(!a.contains("gho_secret"));
        assert_eq!(e.open(&a, b"acc1:access_token").unwrap(), b"gho_secret");
        assert_eq!(
            e.open_or_plaintext(&b, b"acc1:access_token").unwrap(),
            "gho_secret"
        );
    }

    #[test]
    fn wrong_associated_data_fails() {
        let e = envelope();
        let sealed = e.seal(b"gho_secret", b"acc1:access_token").unwrap();
        assert_eq!(
            e.open(&sealed, b"acc2:access_token"),
            Err(AeadError::Invalid)
        );
        assert_eq!(
            e.open(&sealed, b"acc1:refresh_token"),
            Err(AeadError::Invalid)
        );
    }

    #[test]
    fn tampering_fails() {
        let e = envelope();
        let sealed = e.seal(b"gho_secret", b"aad").unwrap();
        let body = sealed.strip_prefix("v1:").unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let forged = format!("v1:{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(e.open(&forged, b"aad"), Err(AeadError::Invalid), "byte {i}");
            raw[i] ^= 1;
        }
        assert_eq!(e.open("v1:AAAA", b"aad"), Err(AeadError::Invalid));
        assert_eq!(e.open("v1:not base64!", b"aad"), Err(AeadError::Invalid));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = envelope().seal(b"gho_secret", b"aad").unwrap();
        let other = Envelope::derive(b"a-long-secret-of-at-least-32-characters", "other purpose");
        assert_eq!(other.open(&sealed, b"aad"), Err(AeadError::Invalid));
        let other = Envelope::new(&[7u8; 32]);
        assert_eq!(other.open(&sealed, b"aad"), Err(AeadError::Invalid));
    }

    #[test]
    fn unknown_versions_are_refused_and_plaintext_passes() {
        let e = envelope();
        let sealed = e.seal(b"x", b"aad").unwrap();
        let v2 = sealed.replacen("v1:", "v2:", 1);
        assert_eq!(
            e.open(&v2, b"aad"),
            Err(AeadError::UnknownVersion("v2".into()))
        );
        assert!(e.open_or_plaintext(&v2, b"aad").is_err());
        // What Better Auth wrote: a bare GitHub token.
        assert_eq!(
            e.open_or_plaintext("gho_fakeAccessToken123", b"aad")
                .unwrap(),
            "gho_fakeAccessToken123"
        );
        assert_eq!(
            e.open("gho_fakeAccessToken123", b"aad"),
            Err(AeadError::Invalid)
        );
    }
}
