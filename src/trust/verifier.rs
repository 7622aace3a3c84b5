//! Verifies a bearer token: pinned algorithms, the key the `kid` names (whose own algorithm must
//! match the header's), the signature, then `exp`, `nbf`, `iss`, `aud` and `sub` with a small
//! leeway. Only after all of that is a claim believed.

use crate::crypto::Algorithm;
use crate::platform::clock::SharedClock;
use crate::trust::keys::KeySource;
use crate::trust::{TrustError, unverified};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Clock skew tolerated between the auth role and us.
pub const LEEWAY_SECS: i64 = 30;

/// Most tokens whose signature is remembered as checked; past it the memory is cleared.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// SHA-256 of a token as it arrived.
type TokenDigest = [u8; 32];

/// The `kid` that verified a token, and its payload.
type Verified = Arc<(String, Map<String, Value>)>;

pub struct Verifier {
    keys: Arc<dyn KeySource>,
    issuer: String,
    audience: String,
    clock: SharedClock,
    /// SHA-256 of a token whose signature verified → the key that verified it and its payload.
    /// A token is immutable, so a signature checked once stays checked while its key is still
    /// published (a revoked key is gone from the next fetched JWKS, and so are its tokens); the
    /// claims (`exp` above all) are still checked on every request against the clock. Saves the
    /// signature check and JSON parse on the hot path, where a client sends the same token many
    /// times.
    verified: Mutex<HashMap<TokenDigest, Verified>>,
}

/// The claims of a verified token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    /// Every claim, as signed.
    pub all: Map<String, Value>,
}

impl Claims {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(Value::as_str)
    }
}

impl Verifier {
    pub fn new(
        keys: Arc<dyn KeySource>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        clock: SharedClock,
    ) -> Self {
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            clock,
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, TrustError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some(entry) = known {
            let (kid, payload) = &*entry;
            self.keys.key(kid).await?;
            return self.check_claims(payload.clone());
        }
        let (kid, all) = self.verify_signature(token).await?;
        let claims = self.check_claims(all)?;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_CACHE_MAX {
            verified.clear();
        }
        verified.insert(id, Arc::new((kid, claims.all.clone())));
        Ok(claims)
    }

    /// The `kid` and payload of a token whose header, key and signature check out (claims
    /// unchecked).
    async fn verify_signature(
        &self,
        token: &str,
    ) -> Result<(String, Map<String, Value>), TrustError> {
        let parsed = unverified::parse(token)?;
        let alg = Algorithm::from_name(&parsed.header.alg)
            .ok_or(TrustError::Invalid("algorithm not allowed"))?;
        let kid = parsed
            .header
            .kid
            .as_deref()
            .ok_or(TrustError::Invalid("no key id"))?;
        let key = self.keys.key(kid).await?;
        if key.alg != alg {
            return Err(TrustError::Invalid("algorithm does not match the key"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(parsed.signature_b64)
            .map_err(|_| TrustError::Invalid("malformed signature"))?;
        if !key.verify(parsed.signing_input.as_bytes(), &signature) {
            return Err(TrustError::Invalid("signature does not verify"));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(parsed.payload_b64)
            .map_err(|_| TrustError::Invalid("malformed payload"))?;
        let payload = serde_json::from_slice(&payload)
            .map_err(|_| TrustError::Invalid("malformed payload"))?;
        Ok((kid.to_owned(), payload))
    }

    fn check_claims(&self, all: Map<String, Value>) -> Result<Claims, TrustError> {
        let now = self.clock.now().timestamp();
        let exp = all
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TrustError::Invalid("no expiry"))?;
        if now > exp + LEEWAY_SECS {
            return Err(TrustError::Invalid("token expired"));
        }
        if let Some(nbf) = all.get("nbf") {
            let nbf = nbf
                .as_i64()
                .ok_or(TrustError::Invalid("malformed not-before"))?;
            if now + LEEWAY_SECS < nbf {
                return Err(TrustError::Invalid("token not yet valid"));
            }
        }
        if all.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TrustError::Invalid("wrong issuer"));
        }
        let audience_ok = match all.get("aud") {
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(TrustError::Invalid("wrong audience"));
        }
        let sub = all
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TrustError::Invalid("no subject"))?
            .to_owned();
        Ok(Claims { sub, exp, all })
    }
}

#[cfg(test)]
mod tests {
    //! The claim rules at their exact boundaries: each assertion here kills a mutant of
    //! `check_claims` that the integration tests let live (a future `nbf`, the leeway's sign,
    //! an `aud` array without us).
    use super::*;
    use crate::platform::clock::ManualClock;
    use crate::trust::keys::{KeySet, StaticKeySource};
    use chrono::DateTime;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn verifier() -> Verifier {
        let keys = KeySet::from_jwks(br#"{"keys":[]}"#).unwrap();
        let clock = ManualClock::new(DateTime::from_timestamp(NOW, 0).unwrap());
        Verifier::new(
            Arc::new(StaticKeySource(keys)),
            "https://auth.example",
            "https://app.example",
            Arc::new(clock),
        )
    }

    /// Valid claims, with `extra` merged over them (`null` removes a claim).
    fn claims(extra: Value) -> Map<String, Value> {
        let mut all = json!({
            "sub": "user-1",
            "iss": "https://auth.example",
            "aud": "https://app.example",
            "iat": NOW,
            "exp": NOW + 900,
        })
        .as_object()
        .cloned()
        .unwrap();
        for (k, v) in extra.as_object().cloned().unwrap() {
            if v.is_null() {
                all.remove(&k);
            } else {
                all.insert(k, v);
            }
        }
        all
    }

    fn check(extra: Value) -> Result<Claims, &'static str> {
        verifier().check_claims(claims(extra)).map_err(|e| match e {
            TrustError::Invalid(why) => why,
            _ => "other",
        })
    }

    #[test]
    fn valid_claims_pass_and_are_returned() {
        let c = check(json!({})).unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.exp, NOW + 900);
        assert_eq!(c.str("iss"), Some("https://auth.example"));
    }

    #[test]
    fn expiry_leeway_holds_at_its_exact_boundary_both_sides() {
        assert!(check(json!({ "exp": NOW - LEEWAY_SECS })).is_ok());
        assert_eq!(
            check(json!({ "exp": NOW - LEEWAY_SECS - 1 })).unwrap_err(),
            "token expired"
        );
        assert_eq!(check(json!({ "exp": null })).unwrap_err(), "no expiry");
        assert_eq!(check(json!({ "exp": "soon" })).unwrap_err(), "no expiry");
    }

    #[test]
    fn a_future_not_before_is_refused_and_one_inside_the_leeway_accepted() {
        assert_eq!(
            check(json!({ "nbf": NOW + LEEWAY_SECS + 1 })).unwrap_err(),
            "token not yet valid"
        );
        assert_eq!(
            check(json!({ "nbf": NOW + 3600 })).unwrap_err(),
            "token not yet valid"
        );
        assert!(check(json!({ "nbf": NOW + LEEWAY_SECS })).is_ok());
        assert!(check(json!({ "nbf": NOW })).is_ok());
        assert!(check(json!({ "nbf": NOW - 3600 })).is_ok());
        assert_eq!(
            check(json!({ "nbf": "later" })).unwrap_err(),
            "malformed not-before"
        );
    }

    #[test]
    fn audience_as_an_array_must_contain_ours() {
        assert!(check(json!({ "aud": ["someone-else", "https://app.example"] })).is_ok());
        assert!(check(json!({ "aud": ["https://app.example"] })).is_ok());
        for aud in [
            json!(["someone-else"]),
            json!([]),
            json!("someone-else"),
            json!(42),
            json!([42]),
        ] {
            assert_eq!(
                check(json!({ "aud": aud.clone() })).unwrap_err(),
                "wrong audience",
                "{aud}"
            );
        }
        assert_eq!(check(json!({ "aud": null })).unwrap_err(), "wrong audience");
    }

    #[test]
    fn issuer_and_subject_are_required() {
        assert_eq!(
            check(json!({ "iss": "https://evil.example" })).unwrap_err(),
            "wrong issuer"
        );
        assert_eq!(check(json!({ "iss": null })).unwrap_err(), "wrong issuer");
        assert_eq!(check(json!({ "sub": "" })).unwrap_err(), "no subject");
        assert_eq!(check(json!({ "sub": null })).unwrap_err(), "no subject");
        assert_eq!(check(json!({ "sub": 7 })).unwrap_err(), "no subject");
    }
}
