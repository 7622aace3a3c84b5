//! Where verification keys come from. [`KeySource`] is the seam: [`HttpJwksSource`] fetches the
//! auth role's JWKS with short timeouts, caches it (TTL from `Cache-Control`, bounded), refetches
//! on an unknown `kid` at most once per cooldown and keeps the last good set when the fetch fails;
//! [`StaticKeySource`] serves a fixed set to tests. [`HttpJwksSource::invalidate`] is how a key
//! rotation or revocation announced by the auth role (`platform::notify::KEYS_CHANNEL`) takes
//! effect at once: the cached set stops being trusted until a fetch made after the notice.

use crate::crypto::Algorithm;
use crate::platform::clock::SharedClock;
use crate::trust::TrustError;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::BoxFuture;
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

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
        let verifier = alg.verifier(&jwk).map_err(|e| e.to_string())?;
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

    /// Both sets hold the same `kid`s.
    fn same_kids(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len() && self.keys.keys().all(|k| other.keys.contains_key(k))
    }

    /// This set without the keys `revoked` names.
    fn without(&self, revoked: &HashSet<String>) -> Self {
        let keys = self
            .keys
            .iter()
            .filter(|(kid, _)| !revoked.contains(*kid))
            .map(|(kid, key)| (kid.clone(), key.clone()))
            .collect();
        Self { keys }
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
/// Most revoked `kid`s remembered from notices (past it the memory starts again; a revoked key is
/// also gone from every JWKS fetched after its revocation committed).
const REVOKED_MAX: usize = 1024;
/// Fetches a key notice exempts from the cooldown until a fetched set shows a change (within one
/// cooldown of the notice): the auth processes hear the notice when we do, so the first
/// fetches after it may get the old set.
const NOTICE_FETCHES: u8 = 3;
/// An unknown `kid` while a notice's change has not shown: fetched again after each pause (real
/// time: the notice reaching the auth processes), at most [`NOTICE_FETCHES`] in all.
const NOTICE_RETRY_PAUSES_MS: [u64; 3] = [20, 40, 80];
/// Larger JWKS documents are refused.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Cache {
    set: Option<Arc<KeySet>>,
    fresh_until: Option<DateTime<Utc>>,
    last_attempt: Option<DateTime<Utc>>,
    /// Set by [`HttpJwksSource::invalidate`]: the set may hold a revoked key, so no lookup uses
    /// it (not even a known `kid`) until a fetch that started after the notice has finished.
    forced: bool,
    /// Bumped by every invalidation: a fetch in flight when a notice arrives may carry the old
    /// set, so it does not clear `forced`.
    generation: u64,
    /// Keys revoked by notice: never used again, even if a fetch that raced the auth role's own
    /// reload still lists them.
    revoked: HashSet<String>,
    /// Left of [`NOTICE_FETCHES`] since the last notice (none once a fetched set changed, or a
    /// fetch failed), until `notice_until`.
    notice_fetches: u8,
    notice_until: Option<DateTime<Utc>>,
    /// Fetches started, and the number of the last one finished: a lookup that waited for the
    /// fetch lock does not fetch again when one that started after it arrived has finished (a
    /// burst of unknown `kid`s costs one fetch, not one each).
    started: u64,
    finished: u64,
}

/// The auth role's JWKS over HTTP, cached.
///
/// A fetch runs in a task of its own, holding the fetch lock until it is done: the request that
/// started it may be dropped (a body that fails to parse drops the identity extractor's future
/// mid-fetch) without leaving an attempt that counted for the cooldown but never finished, which
/// kept every verification at 503 until the cooldown ran out, and again after each such drop.
pub struct HttpJwksSource {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client: reqwest::Client,
    clock: SharedClock,
    cache: RwLock<Cache>,
    /// Single flight: one fetch at a time; everyone else waits for its result or uses the old set.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl HttpJwksSource {
    pub fn new(url: impl Into<String>, clock: SharedClock) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.into(),
                client,
                clock,
                cache: RwLock::new(Cache::default()),
                fetching: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// Another process announced a key rotation or revocation: the cached set is not used again
    /// (not even for a `kid` it holds) until a fetch that started after this call has finished,
    /// and that fetch is not held back by the refetch cooldown. When a tokio runtime is at hand
    /// the fetch starts now, so the first request after the notice rarely waits for it.
    pub fn invalidate(&self, runtime: Option<&tokio::runtime::Handle>) {
        self.invalidate_revoking(None, runtime);
    }

    /// As [`invalidate`](Self::invalidate), and `revoked` (when given) stops verifying at once:
    /// it leaves the cached set now and is kept out of every set fetched later.
    pub fn invalidate_revoking(
        &self,
        revoked: Option<&str>,
        runtime: Option<&tokio::runtime::Handle>,
    ) {
        {
            let mut cache = self.inner.cache.write().unwrap_or_else(|e| e.into_inner());
            if let Some(kid) = revoked {
                if cache.revoked.len() >= REVOKED_MAX {
                    cache.revoked.clear();
                }
                cache.revoked.insert(kid.to_owned());
                let without = cache.set.as_ref().map(|set| set.without(&cache.revoked));
                cache.set = without.map(Arc::new);
            }
            cache.forced = true;
            cache.notice_fetches = NOTICE_FETCHES;
            cache.notice_until =
                Some(self.inner.clock.now() + Duration::seconds(REFETCH_COOLDOWN_SECS));
            cache.generation += 1;
            cache.fresh_until = None;
            cache.last_attempt = None;
        }
        if let Some(runtime) = runtime {
            let inner = Arc::clone(&self.inner);
            runtime.spawn(async move {
                let _guard = inner.fetching.lock().await;
                if inner.cache.read().unwrap_or_else(|e| e.into_inner()).forced {
                    inner.refresh_if_allowed().await;
                }
            });
        }
    }

    async fn lookup(&self, kid: &str) -> Result<Arc<VerifyingKey>, TrustError> {
        let inner = &self.inner;
        // Known to be revoked: no fetch could bring it back, so none is spent on it.
        if inner.revoked(kid) {
            return Err(TrustError::Invalid("unknown key"));
        }
        let (key, fresh, forced) = inner.cached(kid, inner.clock.now());
        let guard = match key {
            Some(key) if fresh => return Ok(key),
            // Known but stale: whoever holds the fetch lock is already refreshing; don't wait.
            Some(key) if !forced => {
                let Ok(guard) = inner.fetching.clone().try_lock_owned() else {
                    return Ok(key);
                };
                guard
            }
            // Unknown, or the set was invalidated: wait for the fetch.
            _ => {
                let arrived = inner.started();
                let guard = inner.fetching.clone().lock_owned().await;
                // A fetch that finished while we waited may have brought (or withdrawn) the key;
                // one that started after we arrived answers for us, unless a notice came since.
                match inner.cached(kid, inner.clock.now()) {
                    (Some(key), _, false) => return Ok(key),
                    (None, _, false) if inner.finished() > arrived => {
                        drop(guard);
                        return inner.answer(kid);
                    }
                    _ => guard,
                }
            }
        };
        let (task, wanted) = (Arc::clone(inner), kid.to_owned());
        // Detached: it finishes (and releases the lock) even if this future is dropped.
        let _ = tokio::spawn(async move {
            task.refresh_if_allowed().await;
            // A key a notice just announced may not be in the auth processes' set yet (they hear
            // the notice when we do): a short while later it may be. The lock stays held, so
            // requests waiting for it share these fetches.
            for pause in NOTICE_RETRY_PAUSES_MS {
                if task.answer(&wanted).is_ok() || !task.notice_pending() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                task.refresh_if_allowed().await;
            }
            drop(guard);
        })
        .await;
        inner.answer(kid)
    }
}

impl Inner {
    /// The cached key for `kid`, whether the set is fresh, and whether it was invalidated.
    fn cached(&self, kid: &str, now: DateTime<Utc>) -> (Option<Arc<VerifyingKey>>, bool, bool) {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let key = cache.set.as_ref().and_then(|s| s.get(kid));
        let fresh = !cache.forced && cache.fresh_until.is_some_and(|t| now < t);
        (key, fresh, cache.forced)
    }

    /// The key as the cached set has it.
    fn answer(&self, kid: &str) -> Result<Arc<VerifyingKey>, TrustError> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        match &cache.set {
            Some(set) => set.get(kid).ok_or(TrustError::Invalid("unknown key")),
            None => Err(TrustError::KeysUnavailable),
        }
    }

    /// A notice's change has not shown yet, and it may still be fetched past the cooldown.
    fn notice_pending(&self) -> bool {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.notice_fetches > 0 && cache.notice_until.is_some_and(|t| self.clock.now() < t)
    }

    fn started(&self) -> u64 {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).started
    }

    fn finished(&self) -> u64 {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .finished
    }

    fn revoked(&self, kid: &str) -> bool {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.revoked.contains(kid)
    }

    /// Fetches unless a fetch was attempted within the cooldown (and no notice's change is
    /// still awaited, see [`NOTICE_FETCHES`]). Call with the fetch lock held.
    async fn refresh_if_allowed(&self) {
        let now = self.clock.now();
        let (generation, forced, number) = {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            if cache
                .last_attempt
                .is_some_and(|t| now - t < Duration::seconds(REFETCH_COOLDOWN_SECS))
            {
                if cache.notice_fetches == 0 || cache.notice_until.is_none_or(|t| now >= t) {
                    return;
                }
                cache.notice_fetches -= 1;
            }
            cache.last_attempt = Some(now);
            cache.started += 1;
            (cache.generation, cache.forced, cache.started)
        };
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.finished = number;
        // A notice that arrived during the fetch may postdate what it brought.
        let current = cache.generation == generation;
        match fetched {
            Ok((set, ttl)) => {
                tracing::debug!(keys = set.len(), ttl_secs = ttl, "JWKS fetched");
                let set = set.without(&cache.revoked);
                if current && cache.set.as_ref().is_none_or(|old| !old.same_kids(&set)) {
                    cache.notice_fetches = 0;
                }
                cache.set = Some(Arc::new(set));
                if current {
                    cache.fresh_until = Some(now + Duration::seconds(ttl));
                    cache.forced = false;
                }
                // A fetch a notice asked for may have beaten the auth processes' own reload
                // (they hear the notice at the same time): it does not hold back the fetch an
                // unknown `kid` (a key that signs at once) asks for next.
                if forced {
                    cache.last_attempt = None;
                }
            }
            // The last good set stays in use (availability over a revocation we could not
            // confirm); the next attempt waits out the cooldown.
            Err(why) => {
                if current {
                    cache.forced = false;
                }
                // Unreachable: the cooldown paces the retries, notice or not.
                if current {
                    cache.notice_fetches = 0;
                }
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

    // What follows pins the rules above one by one (each assertion kills a cargo-mutants
    // mutant that the tests before let live; see docs/mutation-testing.md).

    use crate::platform::clock::ManualClock;
    use josekit::jwk::KeyPair;
    use josekit::jwk::alg::ed::EdCurve;
    use josekit::jws::{ES256, EdDSA, JwsSigner, RS256};
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A public JWK of a fresh key pair (with `extra` merged in) and a signer for it.
    fn fresh_key(alg: Algorithm, extra: Value) -> (Value, Box<dyn JwsSigner>) {
        let (private, public) = match alg {
            Algorithm::EdDsa => {
                let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
                (pair.to_jwk_private_key(), pair.to_jwk_public_key())
            }
            Algorithm::Es256 => {
                let pair = ES256.generate_key_pair().unwrap();
                (pair.to_jwk_private_key(), pair.to_jwk_public_key())
            }
            Algorithm::Rs256 | Algorithm::Ps256 => {
                let pair = RS256.generate_key_pair(2048).unwrap();
                (pair.to_jwk_private_key(), pair.to_jwk_public_key())
            }
        };
        // josekit writes `alg`/`use` of its own; the entries under test say what they say.
        let bare = |jwk: Jwk| {
            let mut map = jwk.as_ref().clone();
            for member in ["alg", "use", "key_ops", "kid"] {
                map.remove(member);
            }
            Jwk::from_map(map).unwrap()
        };
        let (private, public) = (bare(private), bare(public));
        let signer = alg.signer(&private).unwrap();
        let mut jwk = Value::Object(public.as_ref().clone());
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            jwk[k] = v;
        }
        (jwk, signer)
    }

    /// An Ed25519 entry by hand, with any members.
    fn okp(members: Value) -> Value {
        let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k",
            "x": "ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s"});
        for (k, v) in members.as_object().cloned().unwrap() {
            if v.is_null() {
                jwk.as_object_mut().unwrap().remove(&k);
            } else {
                jwk[k] = v;
            }
        }
        jwk
    }

    #[test]
    fn algorithm_names_round_trip_and_nothing_else_is_one() {
        for alg in [
            Algorithm::EdDsa,
            Algorithm::Es256,
            Algorithm::Rs256,
            Algorithm::Ps256,
        ] {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::EdDsa.name(), "EdDSA");
        assert_eq!(Algorithm::Es256.name(), "ES256");
        assert_eq!(Algorithm::Rs256.name(), "RS256");
        assert_eq!(Algorithm::Ps256.name(), "PS256");
        for name in ["HS256", "none", "eddsa", "", "ES384"] {
            assert_eq!(Algorithm::from_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn each_algorithm_verifies_its_own_signature_only() {
        let mut keys = Vec::new();
        for alg in [
            Algorithm::EdDsa,
            Algorithm::Es256,
            Algorithm::Rs256,
            Algorithm::Ps256,
        ] {
            let (jwk, signer) = fresh_key(alg, json!({"kid": alg.name(), "alg": alg.name()}));
            let key = VerifyingKey::from_jwk(&jwk).unwrap();
            assert_eq!(key.alg, alg);
            assert_eq!(key.kid, alg.name());
            keys.push((key, signer));
        }
        let message = b"header.payload";
        for (key, signer) in &keys {
            let signature = signer.sign(message).unwrap();
            assert!(key.verify(message, &signature), "{:?}", key.alg);
            assert!(!key.verify(b"header.other", &signature), "{:?}", key.alg);
            let mut flipped = signature.clone();
            flipped[0] ^= 1;
            assert!(!key.verify(message, &flipped), "{:?}", key.alg);
        }
        // RS256 and PS256 over the same kind of key: neither accepts the other's signature.
        let rs = keys[2].1.sign(message).unwrap();
        let ps = keys[3].1.sign(message).unwrap();
        assert!(!keys[3].0.verify(message, &rs));
        assert!(!keys[2].0.verify(message, &ps));
    }

    #[test]
    fn an_entry_without_alg_takes_the_one_its_key_type_implies() {
        let (rsa, _) = fresh_key(Algorithm::Rs256, json!({"kid": "r"}));
        assert_eq!(VerifyingKey::from_jwk(&rsa).unwrap().alg, Algorithm::Rs256);
        assert_eq!(
            VerifyingKey::from_jwk(&okp(json!({}))).unwrap().alg,
            Algorithm::EdDsa
        );
        let (ec, _) = fresh_key(Algorithm::Es256, json!({"kid": "e"}));
        assert_eq!(VerifyingKey::from_jwk(&ec).unwrap().alg, Algorithm::Es256);
        // An EC key on another curve, or an unknown key type, names nothing we accept.
        let mut p384 = ec.clone();
        p384["crv"] = json!("P-384");
        let why = VerifyingKey::from_jwk(&p384).unwrap_err();
        assert!(why.contains("names no usable alg"), "{why}");
        let mut oct = okp(json!({"kty": "oct"}));
        oct.as_object_mut().unwrap().remove("crv");
        assert!(
            VerifyingKey::from_jwk(&oct)
                .unwrap_err()
                .contains("names no usable alg")
        );
    }

    #[test]
    fn alg_and_key_type_must_agree_member_by_member() {
        let (ec, _) = fresh_key(Algorithm::Es256, json!({"kid": "e", "alg": "ES256"}));
        let (rsa, _) = fresh_key(Algorithm::Rs256, json!({"kid": "r"}));
        let refused = |jwk: &Value| {
            let why = VerifyingKey::from_jwk(jwk).unwrap_err();
            assert!(why.contains("does not fit its key type"), "{jwk}: {why}");
        };
        // EdDSA needs kty OKP *and* crv Ed25519.
        refused(&okp(json!({"alg": "EdDSA", "crv": "Ed448"})));
        refused(&okp(json!({"alg": "EdDSA", "kty": "EC"})));
        // ES256 needs kty EC *and* crv P-256.
        let mut wrong_crv = ec.clone();
        wrong_crv["crv"] = json!("P-384");
        refused(&wrong_crv);
        refused(&okp(json!({"alg": "ES256", "crv": "P-256"})));
        // RS256 and PS256 need an RSA key.
        refused(&okp(json!({"alg": "PS256"})));
        let mut rsa_as_ec = ec.clone();
        rsa_as_ec["alg"] = json!("RS256");
        refused(&rsa_as_ec);
        let mut ps = rsa.clone();
        ps["alg"] = json!("PS256");
        assert_eq!(VerifyingKey::from_jwk(&ps).unwrap().alg, Algorithm::Ps256);
        let why = VerifyingKey::from_jwk(&okp(json!({"alg": "HS256"}))).unwrap_err();
        assert!(why.contains("unsupported alg HS256"), "{why}");
    }

    #[test]
    fn kid_and_use_rules() {
        assert!(VerifyingKey::from_jwk(&okp(json!({"use": "sig"}))).is_ok());
        let why = VerifyingKey::from_jwk(&okp(json!({"use": "enc"}))).unwrap_err();
        assert!(why.contains("not for signatures"), "{why}");
        assert_eq!(
            VerifyingKey::from_jwk(&okp(json!({"kid": ""}))).unwrap_err(),
            "no kid"
        );
        assert_eq!(
            VerifyingKey::from_jwk(&okp(json!({"kid": null}))).unwrap_err(),
            "no kid"
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!(["not", "an", "object"])).unwrap_err(),
            "entry is not an object"
        );
    }

    #[test]
    fn debug_shows_kid_and_alg_and_nothing_of_the_key() {
        let key = VerifyingKey::from_jwk(&okp(json!({"kid": "the-kid"}))).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, r#"VerifyingKey { kid: "the-kid", alg: EdDsa }"#);
    }

    #[test]
    fn a_key_set_keeps_the_usable_entries_by_kid() {
        let doc = json!({"keys": [
            okp(json!({"kid": "a"})),
            okp(json!({"kid": "b", "use": "enc"})),
            okp(json!({"kid": "c"})),
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(!set.is_empty());
        assert_eq!(set.get("a").unwrap().kid, "a");
        assert_eq!(set.get("c").unwrap().kid, "c");
        assert!(set.get("b").is_none());

        let empty = KeySet::from_jwks(br#"{"keys":[]}"#).unwrap();
        assert_eq!(empty.len(), 0);
        assert!(empty.is_empty());
        assert!(KeySet::from_jwks(br#"{"nokeys":[]}"#).is_err());
        assert!(KeySet::from_jwks(b"not json").is_err());
    }

    #[tokio::test]
    async fn a_static_source_serves_its_set_and_nothing_else() {
        let doc = json!({"keys": [okp(json!({"kid": "a"}))]}).to_string();
        let source = StaticKeySource(KeySet::from_jwks(doc.as_bytes()).unwrap());
        assert_eq!(source.key("a").await.unwrap().kid, "a");
        assert!(matches!(
            source.key("b").await,
            Err(TrustError::Invalid("unknown key"))
        ));
    }

    #[test]
    fn cache_control_directives() {
        assert_eq!(ttl_from_cache_control("no-cache"), MIN_TTL_SECS);
        assert_eq!(ttl_from_cache_control("public, No-Store"), MIN_TTL_SECS);
        assert_eq!(ttl_from_cache_control("MAX-AGE=\"120\""), 120);
        assert_eq!(ttl_from_cache_control("max-age=60, public"), 60);
        assert_eq!(ttl_from_cache_control("max-age=soon"), DEFAULT_TTL_SECS);
        assert_eq!(ttl_from_cache_control("max-age=30"), 30);
        assert_eq!(ttl_from_cache_control("max-age=3600"), 3600);
    }

    const T0: i64 = 1_800_000_000;

    /// A JWKS stand-in whose document and headers the test changes as it goes.
    struct Jwks {
        server: MockServer,
        clock: Arc<ManualClock>,
        source: HttpJwksSource,
    }

    impl Jwks {
        async fn serving(status: u16, body: String, cache_control: &str) -> Self {
            let server = MockServer::start().await;
            let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(T0, 0).unwrap()));
            let source =
                HttpJwksSource::new(format!("{}/jwks", server.uri()), clock.clone()).unwrap();
            let jwks = Self {
                server,
                clock,
                source,
            };
            jwks.serve(status, body, cache_control).await;
            jwks
        }

        async fn serve(&self, status: u16, body: String, cache_control: &str) {
            self.server.reset().await;
            Mock::given(method("GET"))
                .and(path("/jwks"))
                .respond_with(
                    ResponseTemplate::new(status)
                        .insert_header("cache-control", cache_control)
                        .set_body_raw(body, "application/json"),
                )
                .mount(&self.server)
                .await;
        }

        /// Requests since the last `serve`.
        async fn fetches(&self) -> usize {
            self.server.received_requests().await.unwrap().len()
        }

        fn at(&self, secs: i64) {
            self.clock
                .set(DateTime::from_timestamp(T0 + secs, 0).unwrap());
        }

        async fn key(&self, kid: &str) -> Result<String, TrustError> {
            self.source.key(kid).await.map(|k| k.kid.clone())
        }
    }

    fn jwks_of(kids: &[&str]) -> String {
        let keys: Vec<Value> = kids.iter().map(|k| okp(json!({"kid": k}))).collect();
        json!({ "keys": keys }).to_string()
    }

    #[tokio::test]
    async fn a_fetched_set_is_fresh_for_its_max_age_and_not_a_second_longer() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=60").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1);
        // Past the refetch cooldown but still fresh: no fetch.
        jwks.at(59);
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1, "fresh at 59 s");
        // Stale at exactly max-age: refetched, and a key gone from the new set is refused.
        jwks.serve(200, jwks_of(&["b"]), "max-age=60").await;
        jwks.at(60);
        assert!(matches!(
            jwks.key("a").await,
            Err(TrustError::Invalid("unknown key"))
        ));
        assert_eq!(jwks.fetches().await, 1, "refetched at 60 s");
        assert_eq!(jwks.key("b").await.unwrap(), "b");
        assert_eq!(jwks.fetches().await, 1);
    }

    #[tokio::test]
    async fn unknown_kids_refetch_once_per_cooldown_to_the_second() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
        jwks.at(29);
        assert!(matches!(
            jwks.key("n").await,
            Err(TrustError::Invalid("unknown key"))
        ));
        assert_eq!(jwks.fetches().await, 0, "within the cooldown");
        jwks.at(30);
        assert_eq!(jwks.key("n").await.unwrap(), "n");
        assert_eq!(jwks.fetches().await, 1, "cooldown over at exactly 30 s");
        // The refetch made the set fresh again from 30 s on.
        jwks.at(329);
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_last_good_set() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=60").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        // An error status, even with a key set in its body, is not a key set.
        jwks.serve(500, jwks_of(&["x"]), "max-age=60").await;
        jwks.at(61);
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1);
        jwks.at(91);
        assert!(matches!(
            jwks.key("x").await,
            Err(TrustError::Invalid("unknown key"))
        ));
        assert_eq!(jwks.fetches().await, 2);
    }

    /// A request dropped while its fetch is in flight (a body that fails to parse drops the
    /// identity extractor mid-fetch) must not leave the cooldown armed with no set: the fetch
    /// finishes on its own and the next request, at the same instant, gets the key.
    #[tokio::test]
    async fn a_lookup_dropped_mid_fetch_does_not_leave_the_keys_unavailable() {
        use futures_util::FutureExt;
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=60").await;
        assert!(
            jwks.source.key("a").now_or_never().is_none(),
            "the fetch is in flight"
        );
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1);
    }

    /// A key notice (another process rotated or revoked a key): the next lookup refetches at
    /// once, although the set is fresh and the cooldown running, and waits for that fetch
    /// rather than using a cached key.
    #[tokio::test]
    async fn an_invalidated_set_is_refetched_at_once_and_not_used_meanwhile() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.serve(200, jwks_of(&["b"]), "max-age=300").await;
        jwks.at(1);
        jwks.source.invalidate(None);
        assert!(matches!(
            jwks.key("a").await,
            Err(TrustError::Invalid("unknown key"))
        ));
        assert_eq!(jwks.fetches().await, 1);
        assert_eq!(jwks.key("b").await.unwrap(), "b");
        assert_eq!(jwks.fetches().await, 1, "fresh again: no second fetch");
    }

    /// The auth processes hear a notice when we do: the fetch it starts may still get the old
    /// set. A key the notice names as revoked stays out regardless, and a key the fetch missed
    /// (one that signs at once) is fetched on first sight, not after the cooldown.
    #[tokio::test]
    async fn a_revocation_notice_wins_over_a_fetch_that_raced_it() {
        let jwks = Jwks::serving(200, jwks_of(&["a", "b"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.serve(200, jwks_of(&["a", "b"]), "max-age=300").await;
        jwks.at(1);
        jwks.source.invalidate_revoking(Some("a"), None);
        assert!(matches!(
            jwks.key("a").await,
            Err(TrustError::Invalid("unknown key"))
        ));
        assert_eq!(jwks.key("b").await.unwrap(), "b");
        assert!(jwks.fetches().await >= 1);
        jwks.serve(200, jwks_of(&["a", "b", "n"]), "max-age=300")
            .await;
        assert_eq!(
            jwks.key("n").await.unwrap(),
            "n",
            "no cooldown after a forced fetch"
        );
        assert!(
            matches!(jwks.key("a").await, Err(TrustError::Invalid("unknown key"))),
            "a revoked key stays out of later sets"
        );
    }

    /// Another process changed the keys, and the auth processes hear the notice when we do: the
    /// fetches after it may still get the old set. Until a fetched set shows the change,
    /// [`NOTICE_FETCHES`] more skip the cooldown, within one cooldown of the notice; a revoked
    /// key never costs one.
    #[tokio::test]
    async fn a_notice_fetches_past_the_cooldown_until_its_change_shows() {
        let unknown = |r: Result<String, TrustError>| {
            assert!(
                matches!(r, Err(TrustError::Invalid("unknown key"))),
                "{r:?}"
            );
        };
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.serve(200, jwks_of(&["a"]), "max-age=300").await;
        jwks.at(1);
        jwks.source.invalidate_revoking(Some("a"), None);
        unknown(jwks.key("a").await);
        assert_eq!(jwks.fetches().await, 0, "no fetch for a revoked key");
        // The notice's own fetch, the one it frees from the cooldown, then the exempt ones
        // (the first lookup retries after short pauses): each gets the old set. Then the
        // cooldown holds.
        for _ in 0..4 {
            unknown(jwks.key("n").await);
        }
        assert_eq!(jwks.fetches().await, 2 + usize::from(NOTICE_FETCHES));

        // Another notice; the auth role has the new key by now.
        jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
        jwks.source.invalidate(None);
        assert_eq!(jwks.key("n").await.unwrap(), "n");
        for _ in 0..3 {
            unknown(jwks.key("m").await);
        }
        assert_eq!(
            jwks.fetches().await,
            2,
            "the change showed: the cooldown holds after the freed fetch"
        );

        // A notice whose change never shows: nothing is exempt one cooldown after it.
        jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
        jwks.source.invalidate(None);
        jwks.at(31);
        for _ in 0..3 {
            unknown(jwks.key("m").await);
        }
        assert_eq!(
            jwks.fetches().await,
            2,
            "the notice's fetch and the one it freed"
        );
    }

    /// A key a notice announced, missing from the set the auth role served first: the request
    /// that asks for it is answered by a fetch a moment later, and so are the requests that
    /// arrived meanwhile.
    #[tokio::test]
    async fn a_key_a_notice_announced_is_fetched_again_a_moment_later() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.server.reset().await;
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(move |_: &wiremock::Request| {
                let kids: &[&str] = if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
                {
                    &["a"]
                } else {
                    &["a", "n"]
                };
                ResponseTemplate::new(200).set_body_raw(jwks_of(kids), "application/json")
            })
            .mount(&jwks.server)
            .await;
        jwks.at(1);
        jwks.source.invalidate(None);
        let burst = (0..10).map(|_| jwks.source.key("n"));
        for r in futures_util::future::join_all(burst).await {
            assert_eq!(r.unwrap().kid, "n");
        }
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Many requests with unknown `kid`s at once (a burst, or an attacker's garbage) wait for
    /// one fetch and share its answer rather than fetch once each.
    #[tokio::test]
    async fn a_burst_of_unknown_kids_costs_one_fetch() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
        jwks.at(1);
        jwks.source.invalidate(None);
        let burst = (0..10).map(|i| jwks.source.key(["x", "y"][i % 2]));
        for r in futures_util::future::join_all(burst).await {
            assert!(matches!(r, Err(TrustError::Invalid("unknown key"))));
        }
        assert_eq!(jwks.fetches().await, 1);
    }

    /// A notice while the auth role is unreachable: the last good set stays in use.
    #[tokio::test]
    async fn an_invalidation_whose_fetch_fails_keeps_the_last_good_set() {
        let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        jwks.serve(503, jwks_of(&[]), "max-age=300").await;
        jwks.source.invalidate(None);
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1);
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(jwks.fetches().await, 1, "cooldown after the failed attempt");
    }

    #[tokio::test]
    async fn no_set_ever_fetched_is_an_outage() {
        let jwks = Jwks::serving(503, jwks_of(&["a"]), "max-age=60").await;
        assert!(matches!(
            jwks.key("a").await,
            Err(TrustError::KeysUnavailable)
        ));
    }

    /// `jwks_of` padded with trailing spaces to exactly `len` bytes.
    fn padded(kids: &[&str], len: usize) -> String {
        let mut doc = jwks_of(kids);
        doc.push_str(&" ".repeat(len - doc.len()));
        doc
    }

    #[tokio::test]
    async fn a_document_of_256_kib_is_read_and_one_byte_more_refused() {
        let jwks = Jwks::serving(200, padded(&["a"], MAX_JWKS_BYTES), "max-age=60").await;
        assert_eq!(jwks.key("a").await.unwrap(), "a");
        assert_eq!(MAX_JWKS_BYTES, 262_144);

        let jwks = Jwks::serving(200, padded(&["a"], MAX_JWKS_BYTES + 1), "max-age=60").await;
        assert!(matches!(
            jwks.key("a").await,
            Err(TrustError::KeysUnavailable)
        ));
    }
}
