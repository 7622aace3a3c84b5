//! The SSRF guard for outbound requests to URLs a user (or a server's discovery document) chose:
//! which addresses may be reached, checked on the literal host and again on every resolved
//! address at connect time, and a redirect policy that never leaves the origin.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Which otherwise-refused address classes a deployment allows (tests allow loopback).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_loopback: bool,
    /// RFC 1918, CGNAT (100.64/10) and unique-local IPv6 (fc00::/7).
    pub allow_private: bool,
    /// Refuse `http://` (production).
    pub require_https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("the URL is not a valid http(s) URL with a host")]
    NotHttp,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not carry credentials")]
    Credentials,
    /// Named by class only: the address itself is not echoed back to the client.
    #[error("the URL's host is a {0} address, which is not allowed")]
    Blocked(&'static str),
    #[error("the redirect leaves the server's origin and is not followed")]
    CrossOrigin,
}

/// The class of an address the policy refuses, or `None` when it may be reached.
pub fn refused_class(policy: Policy, ip: IpAddr) -> Option<&'static str> {
    let class = classify(ip)?;
    match class {
        "loopback" if policy.allow_loopback => None,
        "private" if policy.allow_private => None,
        other => Some(other),
    }
}

fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in IPv6 clothing (mapped, compatible or NAT64) is judged as IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            let o = v6.octets();
            let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
            // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d, deprecated but still parsed
            // and, with a tunnel configured, routed) carry the address in their last 32 bits.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return classify_v4(last32);
            }
            if seg[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return classify_v4(last32).or(Some("reserved"));
            }
            // 6to4 (2002::/16) embeds an IPv4 address in bits 16..48.
            if seg[0] == 0x2002 {
                return classify_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
            }
            classify_v6(v6)
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(169, 254, 170, 2) {
        Some("metadata")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Some("private")
    } else if ip.is_broadcast()
        || ip.is_multicast()
        || o[0] >= 240
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        Some("reserved")
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some("metadata")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private")
    } else if ip.is_multicast() || (first & 0xffc0) == 0xfec0 {
        Some("reserved")
    } else {
        None
    }
}

/// Checks a URL before anything is sent: scheme, no userinfo, and an IP-literal host (which is
/// never resolved, so the resolver below would not see it).
pub fn check_url(policy: Policy, url: &Url) -> Result<(), SsrfError> {
    match url.scheme() {
        "https" => {}
        "http" if policy.require_https => return Err(SsrfError::NotHttps),
        "http" => {}
        _ => return Err(SsrfError::NotHttp),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SsrfError::Credentials);
    }
    let ip = match url.host() {
        None => return Err(SsrfError::NotHttp),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    match refused_class(policy, ip) {
        Some(class) => Err(SsrfError::Blocked(class)),
        None => Ok(()),
    }
}

/// Whether `err` (a reqwest error) was caused by this guard, and which rule it broke.
pub fn blocked_by_guard(err: &(dyn std::error::Error + 'static)) -> Option<SsrfError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(ssrf) = e.downcast_ref::<SsrfError>() {
            return Some(ssrf.clone());
        }
        cur = e.source();
    }
    None
}

/// Resolves with the system resolver and keeps only the addresses the policy allows; a name with
/// none left fails, so a DNS answer pointing inside (or rebinding to) the network is refused at
/// connect time, on the address actually dialled.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Policy,
}

impl GuardedResolver {
    pub fn new(policy: Policy) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match refused_class(policy, a.ip()) {
                    Some(class) => {
                        refused = Some(class);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(SsrfError::Blocked(refused.unwrap_or("unresolvable")));
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest client for user-chosen URLs: guarded resolver, literal-host checks and same-origin
/// redirects only (at most 5), so a redirect can neither change origin nor reach a refused
/// address.
pub fn client(policy: Policy, connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        let Some(previous) = attempt.previous().last() else {
            return attempt.stop();
        };
        if previous.origin() != attempt.url().origin() {
            return attempt.stop();
        }
        if let Err(e) = check_url(policy, attempt.url()) {
            return attempt.error(e);
        }
        if attempt.previous().len() > 5 {
            return attempt.stop();
        }
        attempt.follow()
    });
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(policy)))
        .redirect(redirect)
        .connect_timeout(connect_timeout)
        .no_proxy()
        .user_agent(concat!("switchboard-mcp/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes() {
        let strict = Policy::default();
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("fd12::1", "private"),
            ("169.254.169.254", "metadata"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("::93.184.216.34", "reserved"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "metadata"),
            ("255.255.255.255", "reserved"),
        ] {
            assert_eq!(refused_class(strict, ip(addr)), Some(class), "{addr}");
        }
        for addr in [
            "93.184.216.34",
            "2606:4700::1111",
            "2002:5db8:d822::1",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(refused_class(strict, ip(addr)), None, "{addr}");
        }
        let tests = Policy {
            allow_loopback: true,
            ..Policy::default()
        };
        assert_eq!(refused_class(tests, ip("127.0.0.1")), None);
        assert_eq!(refused_class(tests, ip("10.0.0.1")), Some("private"));
        assert_eq!(
            refused_class(tests, ip("169.254.169.254")),
            Some("metadata")
        );
    }

    #[test]
    fn urls() {
        let p = Policy {
            require_https: true,
            ..Policy::default()
        };
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            check_url(p, &u("http://example.com/")),
            Err(SsrfError::NotHttps)
        );
        assert_eq!(
            check_url(p, &u("ftp://example.com/")),
            Err(SsrfError::NotHttp)
        );
        assert_eq!(
            check_url(p, &u("https://a:b@example.com/")),
            Err(SsrfError::Credentials)
        );
        assert_eq!(
            check_url(p, &u("https://[::1]/mcp")),
            Err(SsrfError::Blocked("loopback"))
        );
        assert_eq!(
            check_url(p, &u("https://0x7f.1/mcp")),
            Err(SsrfError::Blocked("loopback"))
        );
        assert!(check_url(p, &u("https://mcp.linear.app/mcp")).is_ok());
    }
}
