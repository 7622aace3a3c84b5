//! A versioned AES-256-GCM envelope (ring) for secrets stored in database columns:
//! `v<N>:` + base64url-nopad(nonce ‖ ciphertext ‖ tag), under the key numbered N in a [`Keyring`].
//!
//! Every value gets a fresh 96-bit nonce from the OS, and caller-supplied associated data binds
//! it to where it is stored (row and column), so a sealed value copied to another row does not
//! open. The version prefix names the key: a new key becomes current, older values stay readable
//! until they are re-sealed, and [`Keyring::needs_rotation`] says which ones are due.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::BTreeMap;
use std::fmt;

const TAG_LEN: usize = 16;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The value names a key version this keyring does not hold.
    #[error("sealed with unknown key version {0}")]
    UnknownVersion(u32),
    /// Not an envelope, not valid base64, too short, or the tag did not verify (wrong key,
    /// wrong associated data, tampering): one error, so a caller cannot tell them apart.
    #[error("the sealed value does not open")]
    Invalid,
    #[error("a key must be exactly 32 bytes and its version at least 1")]
    BadKey,
    #[error("the system random source failed")]
    Random,
}

/// The current key (which seals) and any older ones (which only open).
pub struct Keyring {
    current: u32,
    keys: BTreeMap<u32, LessSafeKey>,
    rng: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring sealing with `key` as version `version`, opening values of `older` too.
    /// An older entry with the current version is ignored: the current key wins.
    pub fn new(version: u32, key: &[u8], older: &[(u32, Vec<u8>)]) -> Result<Self, AeadError> {
        let mut keys = BTreeMap::new();
        for (v, k) in older {
            keys.insert(*v, Self::key(*v, k)?);
        }
        keys.insert(version, Self::key(version, key)?);
        Ok(Self {
            current: version,
            keys,
            rng: SystemRandom::new(),
        })
    }

    fn key(version: u32, key: &[u8]) -> Result<LessSafeKey, AeadError> {
        if version == 0 || key.len() != 32 {
            return Err(AeadError::BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| AeadError::BadKey)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// A one-key keyring (version 1) derived from a long-lived secret with HKDF-SHA256.
    /// `purpose` (the HKDF info) names what the key is for, so one secret yields independent
    /// keys for independent uses.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"switchboard/aead/v1");
        let mut key = [0u8; 32];
        let info = [purpose.as_bytes()];
        // HKDF-SHA256 can produce up to 255 * 32 bytes; 32 never fails.
        let _ = salt
            .extract(secret)
            .expand(&info, ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key));
        let unbound = UnboundKey::new(&AES_256_GCM, &key);
        let mut keys = BTreeMap::new();
        if let Ok(unbound) = unbound {
            keys.insert(1, LessSafeKey::new(unbound));
        }
        Self {
            current: 1,
            keys,
            rng: SystemRandom::new(),
        }
    }

    /// Reads a stored column that may predate encryption: an envelope is opened, a value
    /// without a `v<N>:` prefix is legacy plaintext (written by a system that did not encrypt)
    /// and returned unchanged.
    pub fn open_or_plaintext(&self, stored: &str, aad: &[u8]) -> Result<String, AeadError> {
        if split(stored).is_err() {
            return Ok(stored.to_owned());
        }
        String::from_utf8(self.open(stored, aad)?).map_err(|_| AeadError::Invalid)
    }

    /// The version new values are sealed under.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// Encrypts `plaintext` under the current key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, AeadError> {
        let key = self.keys.get(&self.current).ok_or(AeadError::BadKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| AeadError::Random)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| AeadError::Invalid)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(format!("v{}:{}", self.current, URL_SAFE_NO_PAD.encode(buf)))
    }

    /// Decrypts a value [`Keyring::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, AeadError> {
        let (version, body) = split(sealed)?;
        let key = self
            .keys
            .get(&version)
            .ok_or(AeadError::UnknownVersion(version))?;
        let mut raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| AeadError::Invalid)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(AeadError::Invalid);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[..NONCE_LEN]);
        let plain_len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut raw[NONCE_LEN..],
            )
            .map_err(|_| AeadError::Invalid)?
            .len();
        raw.drain(..NONCE_LEN);
        raw.truncate(plain_len);
        Ok(raw)
    }

    /// Whether `sealed` was sealed under a key other than the current one (or is not an
    /// envelope at all) and should be re-sealed.
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        split(sealed).map_or(true, |(version, _)| version != self.current)
    }
}

/// `v<N>:<body>` → (N, body).
fn split(sealed: &str) -> Result<(u32, &str), AeadError> {
    let rest = sealed.strip_prefix('v').ok_or(AeadError::Invalid)?;
    let (version, body) = rest.split_once(':').ok_or(AeadError::Invalid)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AeadError::Invalid);
    }
    let version = version.parse::<u32>().map_err(|_| AeadError::Invalid)?;
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const K2: &[u8; 32] = b"fedcba9876543210fedcba9876543210";

    #[test]
    fn round_trips_with_a_fresh_nonce_each_time() {
        let ring = Keyring::new(1, K1, &[]).unwrap();
        let a = ring.seal(b"secret", b"row/field").unwrap();
        let b = ring.seal(b"secret", b"row/field").unwrap();
        assert!(a.starts_with("v1:"));
        assert_ne!(a, b);
        assert!(!a.contains("secret"));
        assert_eq!(ring.open(&a, b"row/field").unwrap(), b"secret");
        assert_eq!(ring.open(&b, b"row/field").unwrap(), b"secret");
    }

    #[test]
    fn other_aad_tampering_and_garbage_do_not_open() {
        let ring = Keyring::new(1, K1, &[]).unwrap();
        let sealed = ring.seal(b"secret", b"row-a/access_token").unwrap();
        assert_eq!(
            ring.open(&sealed, b"row-b/access_token"),
            Err(AeadError::Invalid)
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            ring.open(&tampered, b"row-a/access_token"),
            Err(AeadError::Invalid)
        );
        for junk in [
            "",
            "v1:",
            "v:abc",
            "x1:abc",
            "v1:!!!",
            "plaintext-token",
            "v1:AAAA",
        ] {
            assert_eq!(ring.open(junk, b"x"), Err(AeadError::Invalid), "{junk}");
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_refuses_unknown_versions() {
        let old = Keyring::new(1, K1, &[]).unwrap();
        let v1 = old.seal(b"secret", b"aad").unwrap();
        let new = Keyring::new(2, K2, &[(1, K1.to_vec())]).unwrap();
        assert!(new.needs_rotation(&v1));
        assert_eq!(new.open(&v1, b"aad").unwrap(), b"secret");
        let v2 = new.seal(b"secret", b"aad").unwrap();
        assert!(v2.starts_with("v2:"));
        assert!(!new.needs_rotation(&v2));
        assert_eq!(old.open(&v2, b"aad"), Err(AeadError::UnknownVersion(2)));
        // The same version number under a different key is a wrong key, not a match.
        let impostor = Keyring::new(1, K2, &[]).unwrap();
        assert_eq!(impostor.open(&v1, b"aad"), Err(AeadError::Invalid));
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(
            Keyring::new(1, b"short", &[]).unwrap_err(),
            AeadError::BadKey
        );
        assert_eq!(Keyring::new(0, K1, &[]).unwrap_err(), AeadError::BadKey);
        assert_eq!(
            Keyring::new(2, K1, &[(1, b"short".to_vec())]).unwrap_err(),
            AeadError::BadKey
        );
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_read_legacy_plaintext() {
        let a = Keyring::derive(b"a-long-secret-of-at-least-32-characters", "one purpose");
        let b = Keyring::derive(b"a-long-secret-of-at-least-32-characters", "other purpose");
        let sealed = a.seal(b"gho_token", b"account:1:access_token").unwrap();
        assert_eq!(
            a.open(&sealed, b"account:1:access_token").unwrap(),
            b"gho_token"
        );
        assert_eq!(
            b.open(&sealed, b"account:1:access_token"),
            Err(AeadError::Invalid)
        );
        assert_eq!(a.open_or_plaintext("gho_plain", b"x").unwrap(), "gho_plain");
        assert_eq!(
            a.open_or_plaintext(&sealed, b"account:1:access_token")
                .unwrap(),
            "gho_token"
        );
        assert!(
            a.open_or_plaintext(&sealed, b"account:2:access_token")
                .is_err()
        );
    }

    #[test]
    fn an_empty_plaintext_is_exactly_nonce_and_tag_and_still_opens() {
        let ring = Keyring::new(1, K1, &[]).unwrap();
        let sealed = ring.seal(b"", b"aad").unwrap();
        let body = sealed.strip_prefix("v1:").unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(body).unwrap().len(),
            NONCE_LEN + TAG_LEN
        );
        assert_eq!(ring.open(&sealed, b"aad").unwrap(), b"");
        assert_eq!(ring.open_or_plaintext(&sealed, b"aad").unwrap(), "");
        // One byte short of the boundary is refused, not sliced out of range.
        let mut short = URL_SAFE_NO_PAD.decode(body).unwrap();
        short.pop();
        let short = format!("v1:{}", URL_SAFE_NO_PAD.encode(short));
        assert_eq!(ring.open(&short, b"aad"), Err(AeadError::Invalid));
        assert_eq!(ring.open(&sealed, b"other"), Err(AeadError::Invalid));
    }

    #[test]
    fn versions_are_read_from_the_prefix_exactly() {
        let ring = Keyring::new(7, K1, &[(3, K2.to_vec())]).unwrap();
        assert_eq!(ring.current_version(), 7);
        let sealed = ring.seal(b"x", b"a").unwrap();
        assert!(sealed.starts_with("v7:"), "{sealed}");
        assert!(!ring.needs_rotation(&sealed));
        assert!(ring.needs_rotation("not-an-envelope"));
        assert!(ring.needs_rotation(&sealed.replacen("v7:", "v3:", 1)));
        assert_eq!(
            ring.open(&sealed.replacen("v7:", "v9:", 1), b"a"),
            Err(AeadError::UnknownVersion(9))
        );
        for junk in ["v+7:abc", "v-1:abc", "v99999999999:abc", "7:abc"] {
            assert_eq!(split(junk), Err(AeadError::Invalid), "{junk}");
        }
        assert_eq!(split("v12:body"), Ok((12, "body")));
    }

    #[test]
    fn debug_names_the_versions_and_never_the_keys() {
        let ring = Keyring::new(2, K2, &[(1, K1.to_vec())]).unwrap();
        let shown = format!("{ring:?}");
        assert!(
            shown.contains("Keyring") && shown.contains("current: 2"),
            "{shown}"
        );
        assert!(shown.contains("[1, 2]"), "{shown}");
        assert!(!shown.contains("0123456789abcdef") && !shown.contains("fedcba"));
    }
}
