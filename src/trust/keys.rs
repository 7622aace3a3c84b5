//! Where verification keys come from. [`KeySource`] is the seam: [`HttpJwksSource`] fetches the
//! auth role's JWKS with short timeouts, caches it (TTL from `Cache-Control`, bounded), refetches
//! on an unknown `kid` at most once per cooldown and keeps the last good set when the fetch fails;
//! [`StaticKeySource`] serves a fixed set to tests.

use crate::platform::clock::SharedClock;
use crate::trust::TrustError;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::BoxFuture;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256, RS256};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The only algorithms a token may use. `none` and the HMAC family are absent on purpose: a
/// public key must never be usable as a shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EdDsa,
    Es256,
    Rs256,
    Ps256,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }
}

/// One public key from a JWKS, bound to exactly one algorithm.
pub struct VerifyingKey {
    pub kid: String,
    pub alg: Algorithm,
    verifier: Box<dyn JwsVerifier>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Builds a key from one JWKS entry. The algorithm comes from the entry's `alg` and must
    /// agree with its `kty`/`crv`; an RSA entry without `alg` is taken as RS256 only.
    pub fn from_jwk(entry: &Value) -> Result<Self, String> {
        let map = entry.as_object().ok_or("entry is not an object")?;
        let kid = map
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or("no kid")?
            .to_owned();
        if let Some(use_) = map.get("use")
            && use_ != "sig"
        {
            return Err(format!("key {kid} is not for signatures"));
        }
        let kty = map.get("kty").and_then(Value::as_str).unwrap_or_default();
        let crv = map.get("crv").and_then(Value::as_str);
        let alg = match map.get("alg").and_then(Value::as_str) {
            Some(name) => Algorithm::from_name(name)
                .ok_or_else(|| format!("key {kid} has unsupported alg {name}"))?,
            None if kty == "RSA" => Algorithm::Rs256,
            None if kty == "OKP" => Algorithm::EdDsa,
            None if kty == "EC" && crv == Some("P-256") => Algorithm::Es256,
            None => return Err(format!("key {kid} names no usable alg")),
        };
        let fits = match alg {
            Algorithm::EdDsa => kty == "OKP" && crv == Some("Ed25519"),
            Algorithm::Es256 => kty == "EC" && crv == Some("P-256"),
            Algorithm::Rs256 | Algorithm::Ps256 => kty == "RSA",
        };
        if !fits {
            return Err(format!(
                "key {kid}: alg {} does not fit its key type",
                alg.name()
            ));
        }
        let jwk = Jwk::from_map(map.clone()).map_err(|e| format!("key {kid}: {e}"))?;
        let verifier: Box<dyn JwsVerifier> = match alg {
            Algorithm::EdDsa => Box::new(EdDSA.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
            Algorithm::Es256 => Box::new(ES256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
            Algorithm::Rs256 => Box::new(RS256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
            Algorithm::Ps256 => Box::new(PS256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
        };
        Ok(Self { kid, alg, verifier })
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(message, signature).is_ok()
    }
}

/// Keys by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    /// Parses a JWKS document. Entries we cannot use (other algorithms, encryption keys) are
    /// skipped, not fatal: the auth role may publish more than we accept.
    pub fn from_jwks(document: &[u8]) -> Result<Self, String> {
        let doc: Value = serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no `keys` array")?;
        let mut keys = HashMap::new();
        for entry in entries {
            match VerifyingKey::from_jwk(entry) {
                Ok(key) => {
                    keys.insert(key.kid.clone(), Arc::new(key));
                }
                Err(why) => tracing::debug!(%why, "JWKS entry skipped"),
            }
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Finds the key a token names.
pub trait KeySource: Send + Sync {
    fn key<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, Result<Arc<VerifyingKey>, TrustError>>;
}

/// A fixed key set (tests, or a deployment that pins its keys).
pub struct StaticKeySource(pub KeySet);

impl KeySource for StaticKeySource {
    fn key<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, Result<Arc<VerifyingKey>, TrustError>> {
        let found = self.0.get(kid).ok_or(TrustError::Invalid("unknown key"));
        Box::pin(async move { found })
    }
}

/// Bounds on how long a fetched set is fresh, whatever `Cache-Control` says.
pub const MIN_TTL_SECS: i64 = 30;
pub const MAX_TTL_SECS: i64 = 3600;
/// Freshness when the response has no `max-age`.
pub const DEFAULT_TTL_SECS: i64 = 300;
/// At most one fetch per cooldown, however many unknown `kid`s arrive.
pub const REFETCH_COOLDOWN_SECS: i64 = 30;
/// Larger JWKS documents are refused.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Cache {
    set: Option<Arc<KeySet>>,
    fresh_until: Option<DateTime<Utc>>,
    last_attempt: Option<DateTime<Utc>>,
}

/// The auth role's JWKS over HTTP, cached.
pub struct HttpJwksSource {
    url: String,
    client: reqwest::Client,
    clock: SharedClock,
    cache: RwLock<Cache>,
    /// Single flight: one fetch at a time; everyone else waits for its result or uses the old set.
    fetching: tokio::sync::Mutex<()>,
}

impl HttpJwksSource {
    pub fn new(url: impl Into<String>, clock: SharedClock) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            url: url.into(),
            client,
            clock,
            cache: RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self, kid: &str, now: DateTime<Utc>) -> (Option<Arc<VerifyingKey>>, bool) {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let key = cache.set.as_ref().and_then(|s| s.get(kid));
        let fresh = cache.fresh_until.is_some_and(|t| now < t);
        (key, fresh)
    }

    async fn lookup(&self, kid: &str) -> Result<Arc<VerifyingKey>, TrustError> {
        let (key, fresh) = self.cached(kid, self.clock.now());
        match key {
            Some(key) if fresh => return Ok(key),
            // Known but stale: whoever holds the fetch lock is already refreshing; don't wait.
            Some(key) => {
                let Ok(_guard) = self.fetching.try_lock() else {
                    return Ok(key);
                };
                self.refresh_if_allowed().await;
            }
            None => {
                let _guard = self.fetching.lock().await;
                // A fetch that finished while we waited may have brought the key.
                if let (Some(key), _) = self.cached(kid, self.clock.now()) {
                    return Ok(key);
                }
                self.refresh_if_allowed().await;
            }
        }
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        match &cache.set {
            Some(set) => set.get(kid).ok_or(TrustError::Invalid("unknown key")),
            None => Err(TrustError::KeysUnavailable),
        }
    }

    /// Fetches unless a fetch was attempted within the cooldown. Call with the fetch lock held.
    async fn refresh_if_allowed(&self) {
        let now = self.clock.now();
        {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            if cache
                .last_attempt
                .is_some_and(|t| now - t < Duration::seconds(REFETCH_COOLDOWN_SECS))
            {
                return;
            }
            cache.last_attempt = Some(now);
        }
        match self.fetch().await {
            Ok((set, ttl)) => {
                tracing::debug!(keys = set.len(), ttl_secs = ttl, "JWKS fetched");
                let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
                cache.set = Some(Arc::new(set));
                cache.fresh_until = Some(now + Duration::seconds(ttl));
            }
            // The last good set stays in use; the next attempt waits out the cooldown.
            Err(why) => {
                tracing::warn!(url = %self.url, %why, "JWKS fetch failed; keeping the last good key set")
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, i64), String> {
        let mut res = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("status {}", res.status()));
        }
        let ttl = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(ttl_from_cache_control)
            .unwrap_or(DEFAULT_TTL_SECS);
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("JWKS document too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((KeySet::from_jwks(&body)?, ttl))
    }
}

impl KeySource for HttpJwksSource {
    fn key<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, Result<Arc<VerifyingKey>, TrustError>> {
        Box::pin(self.lookup(kid))
    }
}

/// Seconds of freshness a `Cache-Control` value grants, clamped to our bounds.
pub fn ttl_from_cache_control(value: &str) -> i64 {
    let mut ttl = DEFAULT_TTL_SECS;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_TTL_SECS;
        }
        if let Some(secs) = lower.strip_prefix("max-age=")
            && let Ok(secs) = secs.trim_matches('"').parse::<i64>()
        {
            ttl = secs;
        }
    }
    ttl.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_ttl_is_bounded() {
        assert_eq!(ttl_from_cache_control("public, max-age=300"), 300);
        assert_eq!(ttl_from_cache_control("max-age=1"), MIN_TTL_SECS);
        assert_eq!(ttl_from_cache_control("max-age=999999"), MAX_TTL_SECS);
        assert_eq!(ttl_from_cache_control("no-store"), MIN_TTL_SECS);
        assert_eq!(ttl_from_cache_control("public"), DEFAULT_TTL_SECS);
    }

    #[test]
    fn an_entry_whose_alg_does_not_fit_its_key_is_refused() {
        let okp_as_rsa = serde_json::json!({"kty":"OKP","crv":"Ed25519","alg":"RS256","kid":"a",
            "x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s"});
        assert!(VerifyingKey::from_jwk(&okp_as_rsa).is_err());
        let hmac = serde_json::json!({"kty":"oct","alg":"HS256","kid":"b","k":"c2VjcmV0"});
        assert!(VerifyingKey::from_jwk(&hmac).is_err());
        let good = serde_json::json!({"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"c",
            "x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s"});
        assert_eq!(VerifyingKey::from_jwk(&good).unwrap().alg, Algorithm::EdDsa);
    }
}
