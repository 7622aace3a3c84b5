//! Better Auth's rate limits (spec §7) for the auth role: at most `max` requests per window per
//! client IP and path, checked before routing and body parsing, refused with 429 + `X-Retry-After`.
//!
//! Why not actix-governor: its GCRA refills continuously, whereas Better Auth's window slides from
//! the last *allowed* request, which clients see in `X-Retry-After`; and the crate is GPL. So this
//! runs Better Auth's algorithm exactly, in one of two stores (`auth.rate_limit.storage`):
//! [`MemoryStore`], per process like Better Auth's default memory storage, and [`DatabaseStore`],
//! its `rateLimit` table in PostgreSQL, where every auth process counts together. The database
//! store decides in one statement (an upsert whose conflict branch resets or counts under the
//! row lock), so concurrent requests on any number of processes let exactly `max` through; it
//! costs a pooled connection and a round trip per checked request.

use crate::auth::AuthState;
use crate::db::{DbError, DbPool};
use crate::platform::clock::SharedClock;
use crate::platform::config::{AppEnv, RateLimitConfig, RateLimitStorage};
use crate::platform::error::{PlatformError, render};
use crate::platform::route;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use ipnet::IpNet;
use std::collections::HashMap;
use std::future::{Future, ready};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

pub const RETRY_AFTER_HEADER: &str = "x-retry-after";
/// The bucket for requests with no usable client IP (Better Auth: `no-trusted-ip`).
const NO_IP: &str = "no-ip";
/// Paths no route serves share a bucket per client and rule.
const UNROUTED: &str = "<unrouted>";
/// Shards of the memory store, so concurrent workers rarely wait on the same mutex.
const SHARDS: usize = 16;
/// A shard drops its expired entries once every this many requests it sees.
const PRUNE_EVERY: u32 = 4096;

/// The refusal a limited client sees.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("Too many requests. Please try again later.")]
    TooManyRequests { retry_after_secs: i64 },
}

impl ResponseError for RateLimitError {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        let Self::TooManyRequests { retry_after_secs } = self;
        let mut res = render(self.status_code(), "TOO_MANY_REQUESTS", &self.to_string());
        res.headers_mut().insert(
            HeaderName::from_static(RETRY_AFTER_HEADER),
            HeaderValue::from(*retry_after_secs),
        );
        res
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub window_ms: i64,
    pub max: u32,
}

impl Rule {
    pub fn new(window_secs: u64, max: u32) -> Self {
        let window_ms = i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self { window_ms, max }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after_secs: i64 },
}

/// What a store's decision comes back as (boxed, so the store is a trait object).
pub type Hit<'a> = Pin<Box<dyn Future<Output = Decision> + 'a>>;

/// Where counts live. Async so that a store shared across instances can do IO; such a store
/// chooses its own policy when its backend is down (Better Auth's database storage lets through).
pub trait RateLimitStore: Send + Sync {
    /// Counts one request for `key` at `now_ms` (Unix milliseconds) and decides it.
    fn hit<'a>(&'a self, key: &'a str, rule: Rule, now_ms: i64) -> Hit<'a>;
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    last_ms: i64,
    window_ms: i64,
}

impl Entry {
    fn expired(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_ms) >= self.window_ms
    }

    /// Better Auth's algorithm: a window past since the last allowed request starts afresh; a full
    /// window refuses without moving `last_ms`; otherwise count it and slide the window to now.
    fn apply(&mut self, rule: Rule, now_ms: i64) -> Decision {
        self.window_ms = rule.window_ms;
        if self.expired(now_ms) {
            self.count = 1;
            self.last_ms = now_ms;
            Decision::Allowed
        } else if self.count >= rule.max {
            let left_ms = self
                .last_ms
                .saturating_add(rule.window_ms)
                .saturating_sub(now_ms);
            Decision::Limited {
                retry_after_secs: left_ms.saturating_add(999) / 1000,
            }
        } else {
            self.count += 1;
            self.last_ms = now_ms;
            Decision::Allowed
        }
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<str>, Entry>,
    hits: u32,
}

impl Shard {
    fn prune(&mut self, now_ms: i64) {
        self.map.retain(|_, e| !e.expired(now_ms));
    }

    /// Called when the shard is full: drop expired entries, and if it is still full (a flood of
    /// distinct addresses) drop the least recently used eighth, so each insert stays O(1) amortised.
    fn make_room(&mut self, now_ms: i64, cap: usize) {
        self.prune(now_ms);
        if self.map.len() < cap {
            return;
        }
        let mut lasts: Vec<i64> = self.map.values().map(|e| e.last_ms).collect();
        let nth = lasts.len() / 8;
        let (_, cutoff, _) = lasts.select_nth_unstable(nth);
        let cutoff = *cutoff;
        self.map.retain(|_, e| e.last_ms > cutoff);
    }
}

/// Better Auth's memory storage, sharded by key hash and bounded to about `max_entries`.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
    hasher: RandomState,
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_cap: max_entries.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The whole decision in one short critical section.
    pub fn check(&self, key: &str, rule: Rule, now_ms: i64) -> Decision {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.hits = shard.hits.wrapping_add(1);
        if shard.hits.is_multiple_of(PRUNE_EVERY) {
            shard.prune(now_ms);
        }
        if let Some(entry) = shard.map.get_mut(key) {
            return entry.apply(rule, now_ms);
        }
        if shard.map.len() >= self.shard_cap {
            shard.make_room(now_ms, self.shard_cap);
        }
        let first = Entry {
            count: 1,
            last_ms: now_ms,
            window_ms: rule.window_ms,
        };
        shard.map.insert(key.into(), first);
        Decision::Allowed
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }
}

impl RateLimitStore for MemoryStore {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule, now_ms: i64) -> Hit<'a> {
        Box::pin(ready(self.check(key, rule, now_ms)))
    }
}

/// Better Auth's database storage, made exact: the whole decision is one statement. A new key
/// inserts count 1; on conflict the row is locked and, only when the window has passed or the
/// count is under `max`, reset or counted (a refusal writes nothing). The `WITH` query returns
/// `allowed` with the new `last_request`, or, when the update was skipped, the row as it stood.
const HIT_SQL: &str = "\
WITH hit AS (
    INSERT INTO rate_limit AS r (id, key, count, last_request) VALUES ($1, $2, 1, $3)
    ON CONFLICT (key) DO UPDATE
       SET count = CASE WHEN $3 - r.last_request >= $4 THEN 1 ELSE r.count + 1 END,
           last_request = $3
     WHERE $3 - r.last_request >= $4 OR r.count < $5
    RETURNING r.last_request
)
SELECT true AS allowed, last_request FROM hit
UNION ALL
SELECT false, last_request FROM rate_limit WHERE key = $2 AND NOT EXISTS (SELECT 1 FROM hit)";

/// Rows whose window has passed count as absent, so deleting them changes no decision.
const PRUNE_SQL: &str = "\
DELETE FROM rate_limit WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rate_limit WHERE last_request < $1 LIMIT 10000))";

#[derive(diesel::QueryableByName)]
struct HitRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    allowed: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_request: i64,
}

/// The `rate_limit` table, shared by every auth process on the database.
pub struct DatabaseStore {
    pool: DbPool,
    /// The longest window of any rule: rows idle for longer are pruned.
    horizon_ms: i64,
    hits: AtomicU32,
    warned: AtomicBool,
}

impl DatabaseStore {
    pub fn new(pool: DbPool, horizon_ms: i64) -> Self {
        Self {
            pool,
            horizon_ms,
            hits: AtomicU32::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// The decision for one request, on a pooled connection (blocking).
    pub fn check(
        conn: &mut diesel::PgConnection,
        key: &str,
        rule: Rule,
        now_ms: i64,
    ) -> Result<Decision, DbError> {
        use diesel::RunQueryDsl;
        use diesel::sql_types::{BigInt, Integer, Text};
        let max = i32::try_from(rule.max).unwrap_or(i32::MAX);
        let rows: Vec<HitRow> = diesel::sql_query(HIT_SQL)
            .bind::<Text, _>(crate::crypto::random::id())
            .bind::<Text, _>(key)
            .bind::<BigInt, _>(now_ms)
            .bind::<BigInt, _>(rule.window_ms)
            .bind::<Integer, _>(max)
            .load(conn)?;
        Ok(match rows.first() {
            Some(row) if row.allowed => Decision::Allowed,
            Some(row) => Decision::Limited {
                retry_after_secs: retry_after(row.last_request, rule, now_ms),
            },
            // Refused, but the row was written by a transaction newer than this statement's
            // snapshot: it was allowed just now, so the whole window is left.
            None => Decision::Limited {
                retry_after_secs: retry_after(now_ms, rule, now_ms),
            },
        })
    }

    /// Deletes up to 10,000 rows idle for longer than every window.
    pub fn prune(conn: &mut diesel::PgConnection, before_ms: i64) -> Result<usize, DbError> {
        use diesel::RunQueryDsl;
        Ok(diesel::sql_query(PRUNE_SQL)
            .bind::<diesel::sql_types::BigInt, _>(before_ms)
            .execute(conn)?)
    }
}

/// Seconds until `last_ms + window`, rounded up (Better Auth's `X-Retry-After`).
fn retry_after(last_ms: i64, rule: Rule, now_ms: i64) -> i64 {
    last_ms
        .saturating_add(rule.window_ms)
        .saturating_sub(now_ms)
        .saturating_add(999)
        / 1000
}

impl RateLimitStore for DatabaseStore {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule, now_ms: i64) -> Hit<'a> {
        let key = key.to_owned();
        let prune = self
            .hits
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .is_multiple_of(PRUNE_EVERY);
        let before_ms = now_ms.saturating_sub(self.horizon_ms);
        Box::pin(async move {
            let decided = crate::db::run(&self.pool, move |conn| {
                let decision = Self::check(conn, &key, rule, now_ms)?;
                if prune && let Err(e) = Self::prune(conn, before_ms) {
                    tracing::warn!(error = %e, "rate limit: pruning the rate_limit table failed");
                }
                Ok::<_, DbError>(decision)
            })
            .await;
            match decided {
                Ok(decision) => {
                    self.warned.store(false, Ordering::Relaxed);
                    decision
                }
                // Better Auth's database storage lets a request through when it cannot count it:
                // a database outage already fails every route that needs the database.
                Err(e) => {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "rate limit: the database store failed; letting requests through");
                    }
                    Decision::Allowed
                }
            }
        })
    }
}

/// The store `auth.rate_limit.storage` names.
pub fn store_for(config: &RateLimitConfig, pool: &DbPool) -> Box<dyn RateLimitStore> {
    match config.storage {
        RateLimitStorage::Memory => Box::new(MemoryStore::new(config.max_entries)),
        RateLimitStorage::Database => {
            let longest = config
                .rules
                .iter()
                .filter_map(|r| r.window_secs)
                .chain([config.window_secs, 60])
                .max()
                .unwrap_or(60);
            Box::new(DatabaseStore::new(
                pool.clone(),
                Rule::new(longest, 1).window_ms,
            ))
        }
    }
}

/// `[[auth.rate_limit.rules]]`: `path` is exact, or a prefix when the config wrote `path*`.
struct CustomRule {
    path: String,
    prefix: bool,
    /// `None`: the path is not limited.
    rule: Option<Rule>,
}

/// The auth role's limiter: rules, trusted proxies, a store and the injected clock.
pub struct RateLimiter {
    enabled: bool,
    general: Rule,
    custom: Vec<CustomRule>,
    proxies: Vec<IpNet>,
    store: Box<dyn RateLimitStore>,
    clock: SharedClock,
    warned_no_ip: AtomicBool,
}

impl RateLimiter {
    /// `store` is where counts live: [`MemoryStore`] today, a shared store when one exists.
    pub fn new(
        config: &RateLimitConfig,
        app_env: AppEnv,
        clock: SharedClock,
        store: Box<dyn RateLimitStore>,
    ) -> anyhow::Result<Self> {
        let proxies = config
            .proxy_nets()
            .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
        let custom = config
            .rules
            .iter()
            .map(|r| CustomRule {
                path: r.path.trim_end_matches('*').to_owned(),
                prefix: r.path.ends_with('*'),
                rule: r.enabled.then(|| {
                    let window_secs = r.window_secs.unwrap_or(config.window_secs);
                    Rule::new(window_secs, r.max.unwrap_or(config.max))
                }),
            })
            .collect();
        Ok(Self {
            enabled: config.enabled_in(app_env),
            general: Rule::new(config.window_secs, config.max),
            custom,
            proxies,
            store,
            clock,
            warned_no_ip: AtomicBool::new(false),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The rule for `path` (after `/api/auth`): custom rules first, then Better Auth's special
    /// rules, then the general one. `None`: not limited.
    /// With the rule comes the pattern that chose it ("" for the general rule).
    pub fn rule_for<'s>(&'s self, path: &'s str) -> Option<(Rule, &'s str)> {
        let hit = |c: &&CustomRule| path == c.path || (c.prefix && path.starts_with(&c.path));
        if let Some(custom) = self.custom.iter().find(hit) {
            return custom.rule.map(|rule| (rule, custom.path.as_str()));
        }
        const TIGHT: [&str; 4] = ["/sign-in", "/sign-up", "/change-password", "/change-email"];
        if let Some(prefix) = TIGHT.iter().find(|p| path.starts_with(*p)) {
            return Some((Rule::new(10, 3), prefix));
        }
        if matches!(path, "/request-password-reset" | "/send-verification-email") {
            return Some((Rule::new(60, 3), path));
        }
        if path.starts_with("/forget-password") {
            return Some((Rule::new(60, 3), "/forget-password"));
        }
        Some((self.general, ""))
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the nearest
    /// `X-Forwarded-For` hop (walking from the right) that is not one. Hops left of it were
    /// written by the client and prove nothing. `None`: no usable address.
    pub fn client_ip<'h>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl Iterator<Item = &'h str>,
    ) -> Option<IpAddr> {
        let mut client = unmap(peer?);
        if !self.trusted(client) {
            return Some(client);
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        for hop in hops
            .iter()
            .rev()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
        {
            client = unmap(parse_hop(hop)?);
            if !self.trusted(client) {
                break;
            }
        }
        Some(client)
    }

    /// Counts the request and decides it. `path` is the path after `/api/auth`; `route` is the
    /// pattern of the route that serves it, if any. Keying on the route pattern rather than the
    /// path (they differ only in dynamic segments), and keying unrouted paths on the rule pattern,
    /// bounds the entries one client can make: made-up paths cannot flood the store and so evict
    /// the client's own sign-in bucket.
    pub async fn check<'h>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl Iterator<Item = &'h str>,
        path: &str,
        route: Option<&str>,
    ) -> Decision {
        let Some((rule, pattern)) = self.rule_for(path) else {
            return Decision::Allowed;
        };
        let (route, pattern) = match route {
            Some(route) => (route, ""),
            None => (UNROUTED, pattern),
        };
        let key = match self.client_ip(peer, forwarded_for) {
            Some(ip) => format!("{}|{route}{pattern}", bucket(ip)),
            None => {
                if !self.warned_no_ip.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "rate limit: a request had no usable client IP; such requests share one \
                         bucket per path (check auth.rate_limit.trusted_proxies)"
                    );
                }
                format!("{NO_IP}|{route}{pattern}")
            }
        };
        let now_ms = self.clock.now().timestamp_millis();
        self.store.hit(&key, rule, now_ms).await
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 client it carries.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One IPv6 client usually holds a whole /64, so that is its bucket (as in Better Auth).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) >> 64 << 64)),
        v4 => v4,
    }
}

/// A hop is an address, though some proxies add a port (`1.2.3.4:80`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Middleware around the `/api/auth` scope (`from_fn(enforce)`): runs before routing inside the
/// scope, so unknown paths and bodies never parsed count too, as in Better Auth.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AuthState>>().cloned() else {
        tracing::error!("rate limit: AuthState is not in app data");
        return Err(PlatformError::Internal.into());
    };
    let limiter = &state.rate_limiter;
    if limiter.is_enabled() {
        let peer = req.peer_addr().map(|a| a.ip());
        let forwarded_for = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        // The router's reading of the path (decoded), so `%65mail` cannot dodge
        // `/sign-in/email`; `path` is what is left after the scope.
        let (full, path) = (route::routed_path(&req), req.match_info().unprocessed());
        let base = full
            .get(..full.len().saturating_sub(path.len()))
            .unwrap_or("");
        let route = route::matched_pattern(&req);
        let route = route.as_deref().map(|r| r.strip_prefix(base).unwrap_or(r));
        if let Decision::Limited { retry_after_secs } =
            limiter.check(peer, forwarded_for, path, route).await
        {
            // A response, not an `Err`, so CORS still decorates it and browsers can read it.
            let res = RateLimitError::TooManyRequests { retry_after_secs }.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::clock::ManualClock;
    use crate::platform::config::RateLimitRuleConfig;
    use std::sync::Arc;

    fn limiter(edit: impl FnOnce(&mut RateLimitConfig)) -> RateLimiter {
        let mut config = RateLimitConfig {
            enabled: Some(true),
            window_secs: 10,
            max: 100,
            trusted_proxies: vec![],
            max_entries: 1000,
            storage: RateLimitStorage::Memory,
            rules: vec![],
        };
        edit(&mut config);
        let (clock, store) = (
            Arc::new(ManualClock::starting_now()),
            MemoryStore::new(1000),
        );
        RateLimiter::new(&config, AppEnv::Test, clock, Box::new(store)).expect("limiter")
    }

    fn limited(retry_after_secs: i64) -> Decision {
        Decision::Limited { retry_after_secs }
    }

    #[test]
    fn the_window_slides_from_the_last_allowed_request() {
        let store = MemoryStore::new(100);
        let at = |ms| store.check("k", Rule::new(10, 3), ms);
        for ms in [0, 5_000, 9_000] {
            assert_eq!(at(ms), Decision::Allowed);
        }
        // Full: refused until 10 s after the last allowed request (9 s), rounded up.
        assert_eq!(at(9_000), limited(10));
        assert_eq!(at(12_000), limited(7));
        assert_eq!(at(18_999), limited(1));
        // A refusal does not move the window.
        for _ in 0..3 {
            assert_eq!(at(19_000), Decision::Allowed);
        }
        assert_eq!(at(19_000), limited(10));
        assert_eq!(
            store.check("other", Rule::new(10, 3), 19_000),
            Decision::Allowed
        );
    }

    #[test]
    fn the_store_stays_bounded_and_forgets_expired_entries() {
        let (store, rule) = (MemoryStore::new(64), Rule::new(10, 3));
        for i in 0..20_000 {
            assert_eq!(store.check(&format!("k{i}"), rule, i), Decision::Allowed);
        }
        assert!(store.len() <= 64, "{}", store.len());
        // The most recent keys survive eviction, so they are still counted.
        store.check("k19999", rule, 20_000);
        assert_eq!(store.check("k19999", rule, 20_000), Decision::Allowed);
        assert_eq!(store.check("k19999", rule, 20_000), limited(10));

        let store = MemoryStore::new(100_000);
        for i in 0..1000 {
            store.check(&format!("k{i}"), rule, 0);
        }
        for _ in 0..PRUNE_EVERY {
            store.check("live", rule, 10_000);
        }
        assert!(store.len() < 1000, "{}", store.len());
    }

    #[test]
    fn rules_follow_better_auth_unless_a_custom_rule_matches() {
        let rule = |path: &str, enabled, window_secs, max| RateLimitRuleConfig {
            path: path.into(),
            enabled,
            window_secs,
            max,
        };
        let l = limiter(|c| {
            c.rules = vec![
                rule("/sign-in/email", true, Some(30), Some(5)),
                rule("/get-session", false, None, None),
                rule("/admin/*", true, None, Some(7)),
            ]
        });
        let cases = [
            ("/sign-in/social", Rule::new(10, 3)),
            ("/sign-up/email", Rule::new(10, 3)),
            ("/change-password", Rule::new(10, 3)),
            ("/change-email", Rule::new(10, 3)),
            ("/request-password-reset", Rule::new(60, 3)),
            ("/send-verification-email", Rule::new(60, 3)),
            ("/forget-password", Rule::new(60, 3)),
            ("/request-password-reset/x", Rule::new(10, 100)),
            ("/ok", Rule::new(10, 100)),
            ("/sign-in/email", Rule::new(30, 5)),
            ("/admin/list-users", Rule::new(10, 7)),
        ];
        for (path, expected) in cases {
            assert_eq!(l.rule_for(path).map(|r| r.0), Some(expected), "{path}");
        }
        assert_eq!(l.rule_for("/get-session"), None);
        assert_eq!(l.rule_for("/sign-in/x").map(|r| r.1), Some("/sign-in"));
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let l = limiter(|c| c.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let xff =
            |peer: &str, values: &[&'static str]| l.client_ip(ip(peer), values.iter().copied());
        // Untrusted peer: the header is the client's own word.
        assert_eq!(xff("203.0.113.9", &["1.2.3.4"]), ip("203.0.113.9"));
        // Trusted peer: the nearest hop that is not a proxy; spoofed hops further left are ignored.
        assert_eq!(
            xff("10.0.0.1", &["6.6.6.6, 1.2.3.4, 10.0.0.2"]),
            ip("1.2.3.4")
        );
        assert_eq!(xff("::1", &["6.6.6.6", "1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(xff("10.0.0.1", &["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(xff("10.0.0.1", &["1.2.3.4:80"]), ip("1.2.3.4"));
        // No header: the proxy itself; only proxies: the furthest one.
        assert_eq!(xff("10.0.0.1", &[]), ip("10.0.0.1"));
        assert_eq!(xff("10.0.0.1", &["10.0.0.3, 10.0.0.2"]), ip("10.0.0.3"));
        // Garbage where the client address should be, or no peer: no usable address.
        assert_eq!(xff("10.0.0.1", &["unknown"]), None);
        assert_eq!(l.client_ip(None, std::iter::empty()), None);
        // IPv4-mapped peers are IPv4 (and so match IPv4 proxy ranges); IPv6 buckets are /64s.
        assert_eq!(xff("::ffff:10.0.0.1", &["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(xff("::ffff:1.2.3.4", &[]), ip("1.2.3.4"));
        assert_eq!(
            Some(bucket(ip("2001:db8:1:2:aaaa::1").expect("ip"))),
            ip("2001:db8:1:2::")
        );
    }
}
