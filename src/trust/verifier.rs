//! Verifies a bearer token: pinned algorithms, the key the `kid` names (whose own algorithm must
//! match the header's), the signature, then `exp`, `nbf`, `iss`, `aud` and `sub` with a small
//! leeway. Only after all of that is a claim believed.

use crate::platform::clock::SharedClock;
use crate::trust::keys::{Algorithm, KeySource};
use crate::trust::{TrustError, unverified};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Clock skew tolerated between the auth role and us.
pub const LEEWAY_SECS: i64 = 30;

pub struct Verifier {
    keys: Arc<dyn KeySource>,
    issuer: String,
    audience: String,
    clock: SharedClock,
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
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, TrustError> {
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
        let all: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| TrustError::Invalid("malformed payload"))?;
        self.check_claims(all)
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
