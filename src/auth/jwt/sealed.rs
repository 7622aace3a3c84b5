//! Private signing keys at rest. New keys: AES-256-GCM (ring) under a key derived from
//! `JWT_SECRET` with HKDF-SHA256, AAD = the key's `kid`, stored as the JSON string
//! `"$sb1$<base64url(nonce ‖ ciphertext ‖ tag)>"`. Rows Better Auth wrote (JSON-quoted bare hex,
//! XChaCha20-Poly1305 under SHA-256(`BETTER_AUTH_SECRET`)) and unencrypted JWK rows still open.

use crate::platform::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hkdf};

/// The envelope of keys we encrypt; the version lets a later scheme coexist.
const ENVELOPE_V1: &str = "$sb1$";
const HKDF_SALT: &[u8] = b"switchboard/jwks/private-key";
const HKDF_INFO: &[u8] = b"switchboard jwks private key v1";

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
    #[error("deriving the key-encryption key failed")]
    KeyDerivation,
}

pub struct KeySealer {
    current: LessSafeKey,
    /// SHA-256 of `BETTER_AUTH_SECRET`: only opens rows Better Auth wrote.
    legacy: [u8; 32],
    rng: SystemRandom,
}

impl KeySealer {
    pub fn new(jwt_secret: &Secret, better_auth_secret: &Secret) -> Result<Self, SealError> {
        let okm_key: UnboundKey = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT)
            .extract(jwt_secret.expose().as_bytes())
            .expand(&[HKDF_INFO], &AES_256_GCM)
            .map(UnboundKey::from)
            .map_err(|_| SealError::KeyDerivation)?;
        let mut legacy = [0u8; 32];
        legacy.copy_from_slice(
            digest::digest(&digest::SHA256, better_auth_secret.expose().as_bytes()).as_ref(),
        );
        Ok(Self {
            current: LessSafeKey::new(okm_key),
            legacy,
            rng: SystemRandom::new(),
        })
    }

    /// Encrypts a private JWK for the row `kid`; returns the `private_key` column value.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Encrypt)?;
        let mut buf = plaintext.to_vec();
        self.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        let envelope = format!("{ENVELOPE_V1}{}", URL_SAFE_NO_PAD.encode(out));
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
        if let Some(body) = value.strip_prefix(ENVELOPE_V1) {
            return self.open_v1(kid, body);
        }
        if value.starts_with("$ba$") {
            return Err(SealError::VersionedSecret);
        }
        self.open_better_auth(&value)
    }

    fn open_v1(&self, kid: &str, body: &str) -> Result<Vec<u8>, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Format)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Format);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Format)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .current
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| SealError::Decrypt)?;
        Ok(plain.to_vec())
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
        assert!(column.starts_with("\"$sb1$"), "{column}");
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
