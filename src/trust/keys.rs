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
mod tests;
