//! Private signing keys at rest. New keys: the shared AES-256-GCM envelope
//! ([`crate::crypto::aead::Keyring`], `v<N>:` + base64url(nonce ‖ ciphertext ‖ tag)) under a key
//! derived from `JWT_SECRET` with HKDF-SHA256, AAD = the key's `kid`, stored as a JSON string.
//! Rows Better Auth wrote (JSON-quoted bare hex, XChaCha20-Poly1305 under
//! SHA-256(`BETTER_AUTH_SECRET`)) and unencrypted JWK rows still open.

use crate::crypto::aead::Keyring;
use crate::platform::secret::Secret;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ring::digest;

/// The HKDF purpose of the key that seals signing keys.
const PURPOSE: &str = "switchboard/jwks/private-key/v1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the stored private key is not in a known format")]
    Format,
    #[error(
        "the stored private key does not decrypt (was JWT_SECRET or BETTER_AUTH_SECRET changed?)"
    )]
    Decrypt,
    #[error("Better Auth versioned secrets ($ba$) are not supported")]
    VersionedSecret,
    #[error("encryption failed")]
    Encrypt,
}

pub struct KeySealer {
    current: Keyring,
    /// SHA-256 of `BETTER_AUTH_SECRET`: only opens rows Better Auth wrote.
    legacy: [u8; 32],
}

impl KeySealer {
    pub fn new(jwt_secret: &Secret, better_auth_secret: &Secret) -> Result<Self, SealError> {
        let mut legacy = [0u8; 32];
        legacy.copy_from_slice(
            digest::digest(&digest::SHA256, better_auth_secret.expose().as_bytes()).as_ref(),
        );
        Ok(Self {
            current: Keyring::derive(jwt_secret.expose().as_bytes(), PURPOSE),
            legacy,
        })
    }

    /// Encrypts a private JWK for the row `kid`; returns the `private_key` column value.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let envelope = self
            .current
            .seal(plaintext, kid.as_bytes())
            .map_err(|_| SealError::Encrypt)?;
        serde_json::to_string(&envelope).map_err(|_| SealError::Encrypt)
    }

    /// Decrypts the `private_key` column of row `kid` to the private JWK's JSON bytes.
    pub fn open(&self, kid: &str, column: &str) -> Result<Vec<u8>, SealError> {
        let column = column.trim();
        if column.starts_with('{') {
            // Better Auth with `disablePrivateKeyEncryption`: the JWK itself.
            return Ok(column.as_bytes().to_vec());
        }
        let value: String = if column.starts_with('"') {
            serde_json::from_str(column).map_err(|_| SealError::Format)?
        } else {
            column.to_owned()
        };
        if value.starts_with("$ba$") {
            return Err(SealError::VersionedSecret);
        }
        if value.starts_with('v') && value.contains(':') {
            return self
                .current
                .open(&value, kid.as_bytes())
                .map_err(|_| SealError::Decrypt);
        }
        self.open_better_auth(&value)
    }

    /// Better Auth's `symmetricEncrypt`: hex of `nonce(24) ‖ ciphertext ‖ tag(16)`, no AAD.
    fn open_better_auth(&self, hex_value: &str) -> Result<Vec<u8>, SealError> {
        let bytes = hex::decode(hex_value).map_err(|_| SealError::Format)?;
        if bytes.len() < 24 + 16 {
            return Err(SealError::Format);
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Format)?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(&self.legacy).map_err(|_| SealError::Format)?;
        cipher
            .decrypt(&nonce, sealed)
            .map_err(|_| SealError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real row from spec/better-auth-compat.md §8.4.
    const BA_SECRET: &str = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    const BA_PRIVATE_KEY: &str = "\"9bcc22f0e8e6bcfca7e63f2c64c839c811ef7f1567ace4f2fb8fdb21268a0cc0b1106e105072a14852444fb984595b72811557fe32925917cdb53c5cb9e99311e056e4cbd70509b6586708aa1aab4fb05e021fe908af2bea2ba3983a138a0711939d3c5d6751310d80f68ef47fb1bdef7b1e9d58e605bd3db402ec9ce3fb6ba06855ce191ab84df3716092acfec9b8b64b9af1a1667eedfd5785177e789996c1b027ebe1e9335a0c4f\"";

    fn sealer() -> KeySealer {
        KeySealer::new(
            &Secret::new("jwt-secret-for-unit-tests-0123456789"),
            &Secret::new(BA_SECRET),
        )
        .unwrap()
    }

    #[test]
    fn opens_the_better_auth_test_vector() {
        let jwk = sealer()
            .open("IdQ54hUv48Z8XrULqgArTYpV4uHxr4r2", BA_PRIVATE_KEY)
            .unwrap();
        assert_eq!(
            String::from_utf8(jwk).unwrap(),
            r#"{"crv":"Ed25519","d":"_QrvdZ2gT93kLK9fp7e266G2NtYJrnVSGi0wNm1_B8E","x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s","kty":"OKP"}"#
        );
    }

    #[test]
    fn a_wrong_better_auth_secret_does_not_open_it() {
        let other = KeySealer::new(
            &Secret::new("jwt-secret-for-unit-tests-0123456789"),
            &Secret::new("another-secret-0123456789abcdefghijklmnop"),
        )
        .unwrap();
        assert!(matches!(
            other.open("x", BA_PRIVATE_KEY),
            Err(SealError::Decrypt)
        ));
    }

    #[test]
    fn sealed_keys_round_trip_and_are_bound_to_their_kid() {
        let s = sealer();
        let column = s.seal("kid-1", b"{\"k\":1}").unwrap();
        assert!(column.starts_with("\"v1:"), "{column}");
        assert!(
            serde_json::from_str::<String>(&column).is_ok(),
            "JSON-compatible"
        );
        assert_eq!(s.open("kid-1", &column).unwrap(), b"{\"k\":1}");
        assert!(matches!(s.open("kid-2", &column), Err(SealError::Decrypt)));
        let other = KeySealer::new(
            &Secret::new("a-different-jwt-secret-0123456789ab"),
            &Secret::new(BA_SECRET),
        )
        .unwrap();
        assert!(matches!(
            other.open("kid-1", &column),
            Err(SealError::Decrypt)
        ));
    }
}
