//! Which rule and which bucket a request falls in: Better Auth's special rules, the configured
//! custom rules, the client IP (through trusted proxies only; an IPv6 client's /64).

use super::{Decision, RateLimitStore, Rule};
use crate::auth::config::RateLimitConfig;
use crate::platform::clock::SharedClock;
use crate::platform::config::AppEnv;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

/// The bucket for requests with no usable client IP (Better Auth: `no-trusted-ip`).
const NO_IP: &str = "no-ip";
/// Paths no route serves share a bucket per client and rule.
const UNROUTED: &str = "<unrouted>";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::RateLimitRuleConfig;
    use crate::auth::config::RateLimitStorage;
    use crate::auth::rate_limit::{MemoryStore, PRUNE_EVERY};
    use crate::platform::clock::ManualClock;
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
