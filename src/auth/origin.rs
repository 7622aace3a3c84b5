//! Trusted origins and the CSRF checks Better Auth makes (spec §5): the Origin/Referer check on
//! cookie-bearing writes, the stricter form-CSRF check on sign-in and sign-up, and the check of
//! every redirect target a client hands us (no open redirects).

use crate::auth::cookies::has_cookie_header;
use crate::auth::error::{AuthError, Code};
use crate::platform::redirect;
use actix_web::HttpRequest;
use actix_web::http::header;
use url::Url;

#[derive(Debug, Clone)]
pub struct TrustedOrigins {
    base_origin: String,
    patterns: Vec<String>,
}

/// The origin of a URL string: `scheme://host[:port]` (custom schemes keep `scheme://host`).
pub fn origin_of(value: &str) -> Option<String> {
    let url = Url::parse(value).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}://{}", url.host_str().unwrap_or(""))),
    }
}

/// `*` matches any run of characters, `?` one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl TrustedOrigins {
    /// The origin of `BETTER_AUTH_URL`, plus `CORS_ORIGINS` and `BETTER_AUTH_TRUSTED_ORIGINS`.
    pub fn new(base_url: &str, extra: impl IntoIterator<Item = String>) -> Self {
        let base_origin = origin_of(base_url).unwrap_or_else(|| base_url.to_owned());
        let mut patterns = vec![base_origin.clone()];
        for entry in extra {
            let entry = entry.trim().trim_end_matches('/').to_owned();
            if entry.is_empty() {
                continue;
            }
            if entry.contains('*') || entry.contains('?') {
                patterns.push(entry);
            } else {
                patterns.push(origin_of(&entry).unwrap_or(entry));
            }
        }
        Self {
            base_origin,
            patterns,
        }
    }

    pub fn base_origin(&self) -> &str {
        &self.base_origin
    }

    /// Whether `url` (a full URL or an origin) belongs to a trusted origin.
    pub fn is_trusted(&self, url: &str) -> bool {
        let Some(origin) = origin_of(url) else {
            return false;
        };
        let host = Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        self.patterns.iter().any(|pattern| {
            if pattern.contains('*') || pattern.contains('?') {
                if pattern.contains("://") {
                    wildcard_match(pattern, &origin)
                } else {
                    host.as_deref().is_some_and(|h| {
                        let digits_only = pattern
                            .chars()
                            .all(|c| c.is_ascii_digit() || "*.?".contains(c));
                        (!digits_only || h.parse::<std::net::Ipv4Addr>().is_ok())
                            && wildcard_match(pattern, h)
                    })
                }
            } else {
                *pattern == origin
            }
        })
    }

    /// A redirect target a client supplied: the shared redirect rule (a relative path that
    /// normalises to itself, or a URL whose origin is trusted), within the length cap.
    pub fn allows_redirect(&self, target: &str) -> bool {
        target.len() <= redirect::MAX_TARGET_LEN
            && redirect::check_location(target, |url| self.is_trusted(url.as_str())).is_ok()
    }

    /// Checks one client-supplied URL field; `code` names which field failed.
    pub fn check_url(&self, value: Option<&str>, code: Code) -> Result<(), AuthError> {
        match value {
            Some(v) if !v.is_empty() && !self.allows_redirect(v) => Err(AuthError::forbidden(code)),
            _ => Ok(()),
        }
    }

    /// The Origin check (spec §5 A.1) for a request that must prove where it comes from.
    fn check_request_origin(&self, req: &HttpRequest) -> Result<(), AuthError> {
        let headers = req.headers();
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let candidate = match origin {
            Some("null") => {
                let same_origin = headers
                    .get("sec-fetch-site")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == "same-origin");
                if same_origin {
                    return Ok(());
                }
                None
            }
            Some(o) => Some(o.to_owned()),
            None => headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(origin_of),
        };
        match candidate {
            None => Err(AuthError::forbidden(Code::MissingOrNullOrigin)),
            Some(c) if c == "null" => Err(AuthError::forbidden(Code::MissingOrNullOrigin)),
            Some(c) if self.is_trusted(&c) => Ok(()),
            Some(c) => {
                tracing::warn!(
                    origin = %c,
                    route = %req.match_pattern().unwrap_or_default(),
                    "refused a request from an untrusted origin (403 INVALID_ORIGIN); add the \
                     origin to CORS_ORIGINS (browser apps) or BETTER_AUTH_TRUSTED_ORIGINS to admit it"
                );
                Err(AuthError::forbidden(Code::InvalidOrigin))
            }
        }
    }

    /// The check every state-changing request goes through: with a cookie, the request must
    /// come from a trusted origin (GET/HEAD/OPTIONS are exempt).
    pub fn check_write(&self, req: &HttpRequest) -> Result<(), AuthError> {
        if is_safe_method(req) || !has_cookie_header(req) {
            return Ok(());
        }
        self.check_request_origin(req)
    }

    /// The form-CSRF check of sign-in and sign-up (spec §5 B): enforced even without cookies
    /// whenever a browser says where the request comes from.
    pub fn check_login(&self, req: &HttpRequest) -> Result<(), AuthError> {
        if has_cookie_header(req) {
            return self.check_request_origin(req);
        }
        let headers = req.headers();
        let fetch = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (site, mode, dest) = (
            fetch("sec-fetch-site"),
            fetch("sec-fetch-mode"),
            fetch("sec-fetch-dest"),
        );
        if site.is_some() || mode.is_some() || dest.is_some() {
            if site == Some("cross-site") && mode == Some("navigate") {
                return Err(AuthError::forbidden(Code::CrossSiteNavigationLoginBlocked));
            }
            return self.check_request_origin(req);
        }
        if headers.contains_key(header::ORIGIN) || headers.contains_key(header::REFERER) {
            return self.check_request_origin(req);
        }
        Ok(())
    }
}

fn is_safe_method(req: &HttpRequest) -> bool {
    use actix_web::http::Method;
    matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn trusted() -> TrustedOrigins {
        TrustedOrigins::new(
            "http://127.0.0.1:3111/api/auth",
            vec![
                "http://localhost:5173".to_owned(),
                "https://*.example.com".to_owned(),
                "myapp://".to_owned(),
                "*.preview.dev".to_owned(),
            ],
        )
    }

    #[test]
    fn matches_exact_origins_and_patterns() {
        let t = trusted();
        assert!(t.is_trusted("http://127.0.0.1:3111"));
        assert!(t.is_trusted("http://localhost:5173/some/path?x=1"));
        assert!(!t.is_trusted("http://localhost:5174"));
        assert!(t.is_trusted("https://app.example.com"));
        assert!(!t.is_trusted("http://app.example.com"));
        assert!(!t.is_trusted("https://example.com.evil.test"));
        assert!(t.is_trusted("https://pr-1.preview.dev"));
        assert!(!t.is_trusted("not a url"));
    }

    #[test]
    fn redirect_targets() {
        let t = trusted();
        assert!(t.allows_redirect("/dashboard"));
        assert!(t.allows_redirect("http://localhost:5173/dash"));
        for bad in [
            "//evil.example/x",
            "/\\evil.example",
            "/%2F%2Fevil.example",
            "/a%5cb",
            "/a\nb",
            "https://evil.example/x",
            "javascript:alert(1)",
            // Finding 2: targets that normalise to another host once a parameter is set.
            "/.//evil.com/phish",
            "/a/..//evil.com",
            "/%2e//evil.com",
        ] {
            assert!(!t.allows_redirect(bad), "{bad:?} allowed");
        }
        assert!(
            t.check_url(Some("https://evil.example"), Code::InvalidCallbackUrl)
                .is_err()
        );
        assert!(t.check_url(None, Code::InvalidCallbackUrl).is_ok());
    }

    #[test]
    fn cookie_writes_need_a_trusted_origin() {
        let t = trusted();
        let with_cookie = |origin: Option<&str>, referer: Option<&str>| {
            let mut r = TestRequest::post().insert_header((header::COOKIE, "a=b"));
            if let Some(o) = origin {
                r = r.insert_header((header::ORIGIN, o));
            }
            if let Some(re) = referer {
                r = r.insert_header((header::REFERER, re));
            }
            t.check_write(&r.to_http_request())
        };
        assert!(with_cookie(Some("http://localhost:5173"), None).is_ok());
        assert!(with_cookie(None, Some("http://localhost:5173/page")).is_ok());
        assert!(matches!(
            with_cookie(None, None),
            Err(AuthError::Api(_, Code::MissingOrNullOrigin))
        ));
        assert!(matches!(
            with_cookie(Some("null"), None),
            Err(AuthError::Api(_, Code::MissingOrNullOrigin))
        ));
        assert!(matches!(
            with_cookie(Some("https://evil.example"), None),
            Err(AuthError::Api(_, Code::InvalidOrigin))
        ));
        // No cookie: not a CSRF vector.
        assert!(
            t.check_write(
                &TestRequest::post()
                    .insert_header((header::ORIGIN, "https://evil.example"))
                    .to_http_request()
            )
            .is_ok()
        );
        // Reads are exempt.
        assert!(
            t.check_write(
                &TestRequest::get()
                    .insert_header((header::COOKIE, "a=b"))
                    .to_http_request()
            )
            .is_ok()
        );
    }

    #[test]
    fn login_csrf_rules() {
        let t = trusted();
        let login = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post();
            for (k, v) in headers {
                r = r.insert_header((*k, *v));
            }
            t.check_login(&r.to_http_request())
        };
        assert!(login(&[]).is_ok(), "server-to-server calls pass");
        assert!(matches!(
            login(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate")
            ]),
            Err(AuthError::Api(_, Code::CrossSiteNavigationLoginBlocked))
        ));
        assert!(matches!(
            login(&[("sec-fetch-mode", "cors")]),
            Err(AuthError::Api(_, Code::MissingOrNullOrigin))
        ));
        assert!(
            login(&[
                ("sec-fetch-mode", "cors"),
                ("origin", "http://localhost:5173")
            ])
            .is_ok()
        );
        assert!(matches!(
            login(&[("origin", "http://evil.example")]),
            Err(AuthError::Api(_, Code::InvalidOrigin))
        ));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.a.com", "x.a.com"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("*.a.com", "a.com"));
        assert!(wildcard_match("*", ""));
    }

    // What follows pins the rules above one by one (each assertion kills a cargo-mutants
    // mutant that the tests before let live; see docs/mutation-testing.md).

    #[test]
    fn wildcard_matching_backtracks_and_anchors_both_ends() {
        for (pattern, text, expected) in [
            ("", "", true),
            ("", "a", false),
            ("a", "ab", false),
            ("ab", "a", false),
            ("a?c", "ac", false),
            ("?", "", false),
            ("a**", "a", true),
            ("a*?", "a", false),
            ("*b", "ab", true),
            ("*a", "bba", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*bc", "abxbc", true),
            ("*.a.com", "x.y.a.com", true),
            ("*.a.com", "x.a.co", false),
            // A `*` in the text is a character like any other, also right after a backtrack.
            ("*?", "x*", true),
            ("*a", "b*a", true),
        ] {
            assert_eq!(
                wildcard_match(pattern, text),
                expected,
                "{pattern:?} ~ {text:?}"
            );
        }
    }

    #[test]
    fn patterns_with_only_a_question_mark_stay_patterns() {
        let t = TrustedOrigins::new(
            "https://auth.example",
            vec!["https://pr-?.example.org".to_owned()],
        );
        assert!(t.is_trusted("https://pr-1.example.org"));
        assert!(!t.is_trusted("https://pr-12.example.org"));
        assert!(!t.is_trusted("https://pr-"));
        assert_eq!(t.base_origin(), "https://auth.example");
        assert_eq!(trusted().base_origin(), "http://127.0.0.1:3111");
    }

    #[test]
    fn a_digits_only_pattern_matches_ip_addresses_only() {
        let t = TrustedOrigins::new(
            "https://auth.example",
            vec!["192.168.*.*".to_owned(), "10.0.0.?".to_owned()],
        );
        assert!(t.is_trusted("http://192.168.1.5:3000"));
        assert!(t.is_trusted("https://10.0.0.7"));
        assert!(!t.is_trusted("http://192.168.1.evil.com"));
        assert!(!t.is_trusted("http://10.0.0.a"));
        assert!(!t.is_trusted("http://192.169.1.5"));
    }

    #[test]
    fn custom_schemes_keep_scheme_and_host() {
        assert_eq!(
            origin_of("myapp://callback/x?y=1").as_deref(),
            Some("myapp://callback")
        );
        assert_eq!(
            origin_of("https://a.example:8443/x").as_deref(),
            Some("https://a.example:8443")
        );
        assert_eq!(
            origin_of("https://a.example:443/x").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(origin_of("no scheme"), None);
        let t = TrustedOrigins::new("https://auth.example", vec!["myapp://callback".to_owned()]);
        assert!(t.is_trusted("myapp://callback/done"));
        assert!(!t.is_trusted("myapp://other/done"));
        assert!(!t.is_trusted("otherapp://callback/done"));
    }

    #[test]
    fn redirect_length_cap_to_the_byte() {
        let t = trusted();
        let at_cap = format!("/{}", "a".repeat(redirect::MAX_TARGET_LEN - 1));
        assert!(t.allows_redirect(&at_cap));
        assert!(!t.allows_redirect(&format!("{at_cap}a")));
        assert_eq!(redirect::MAX_TARGET_LEN, 2048);
    }

    #[test]
    fn check_url_passes_absent_empty_and_allowed_values() {
        let t = trusted();
        assert!(t.check_url(Some(""), Code::InvalidCallbackUrl).is_ok());
        assert!(t.check_url(Some("/dash"), Code::InvalidCallbackUrl).is_ok());
        assert!(
            t.check_url(Some("http://localhost:5173/x"), Code::InvalidCallbackUrl)
                .is_ok()
        );
        assert!(matches!(
            t.check_url(Some("//evil.example"), Code::InvalidRedirectUrl),
            Err(AuthError::Api(_, Code::InvalidRedirectUrl))
        ));
    }

    fn request(method: actix_web::http::Method, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::default().method(method);
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    #[test]
    fn a_null_origin_passes_only_when_the_browser_says_same_origin() {
        use actix_web::http::Method;
        let t = trusted();
        let write = |site: &str| {
            t.check_write(&request(
                Method::POST,
                &[
                    ("cookie", "a=b"),
                    ("origin", "null"),
                    ("sec-fetch-site", site),
                ],
            ))
        };
        assert!(write("same-origin").is_ok());
        for site in ["same-site", "cross-site", "none"] {
            assert!(
                matches!(
                    write(site),
                    Err(AuthError::Api(_, Code::MissingOrNullOrigin))
                ),
                "{site}"
            );
        }
        // A Referer with no usable origin is no origin either.
        assert!(matches!(
            t.check_write(&request(
                Method::POST,
                &[("cookie", "a=b"), ("referer", "null")]
            )),
            Err(AuthError::Api(_, Code::MissingOrNullOrigin))
        ));
    }

    #[test]
    fn every_safe_method_is_exempt_and_every_other_is_not() {
        use actix_web::http::Method;
        let t = trusted();
        let evil = [("cookie", "a=b"), ("origin", "https://evil.example")];
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(t.check_write(&request(m.clone(), &evil)).is_ok(), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(t.check_write(&request(m.clone(), &evil)).is_err(), "{m}");
        }
    }

    #[test]
    fn login_checks_each_fetch_metadata_header_and_each_origin_header() {
        let t = trusted();
        let login = |headers: &[(&str, &str)]| {
            t.check_login(&request(actix_web::http::Method::POST, headers))
        };
        // Any one Sec-Fetch-* header means a browser: it must then name a trusted origin.
        for header in ["sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest"] {
            assert!(
                matches!(
                    login(&[(header, "x")]),
                    Err(AuthError::Api(_, Code::MissingOrNullOrigin))
                ),
                "{header}"
            );
        }
        // Only cross-site *and* navigate is the blocked form post.
        let origin = ("origin", "http://localhost:5173");
        assert!(
            login(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "cors"),
                origin
            ])
            .is_ok()
        );
        assert!(
            login(&[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "navigate"),
                origin
            ])
            .is_ok()
        );
        // Without Sec-Fetch-*, either origin header alone is checked.
        assert!(matches!(
            login(&[("referer", "http://evil.example/form")]),
            Err(AuthError::Api(_, Code::InvalidOrigin))
        ));
        assert!(login(&[("referer", "http://localhost:5173/form")]).is_ok());
        // With a cookie, the Origin check applies whatever Sec-Fetch-* says.
        assert!(matches!(
            login(&[("cookie", "a=b")]),
            Err(AuthError::Api(_, Code::MissingOrNullOrigin))
        ));
        assert!(login(&[("cookie", "a=b"), origin]).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Pieces attackers splice into hosts and URLs.
        const URLISH: &str =
            "(https?:|//|/|\\\\|@|:|\\.|localhost|5173|example\\.com|evil|app|\\*|%2e|%2f|\\?|#)*";

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the string, a trusted verdict means its origin (as a browser reads it)
            /// is one the configuration names.
            #[test]
            fn trusted_means_a_configured_origin(s in prop_oneof![URLISH, ".{0,40}"]) {
                let t = trusted();
                if t.is_trusted(&s) {
                    let url = Url::parse(&s).unwrap();
                    let host = url.host_str().unwrap_or("").to_owned();
                    let ok = match url.scheme() {
                        "http" => {
                            (host == "127.0.0.1" && url.port() == Some(3111))
                                || (host == "localhost" && url.port() == Some(5173))
                                || host.ends_with(".preview.dev")
                        }
                        "https" => host.ends_with(".example.com") || host.ends_with(".preview.dev"),
                        "myapp" => true,
                        _ => host.ends_with(".preview.dev"),
                    };
                    prop_assert!(ok, "{s:?} trusted as {url}");
                }
            }

            /// An allowed redirect target, resolved by a browser on our origin, lands on a
            /// trusted host.
            #[test]
            fn an_allowed_redirect_lands_on_a_trusted_origin(s in prop_oneof![URLISH, "/.{0,40}"]) {
                let t = trusted();
                if t.allows_redirect(&s) {
                    let base = Url::parse("http://127.0.0.1:3111/api/auth/verify-email").unwrap();
                    let landed = base.join(&s).unwrap();
                    prop_assert!(t.is_trusted(landed.as_str()), "{s:?} lands on {landed}");
                }
            }

            /// The origin checks read any header values without panicking, and a cookie-bearing
            /// write whose Origin is untrusted is always refused.
            #[test]
            fn origin_checks_never_panic_and_refuse_untrusted_writes(
                origin in "[ -~]{0,40}",
                referer in "[ -~]{0,40}",
                site in "(cross-site|same-origin|same-site|none|[a-z-]{0,10})",
                mode in "(navigate|cors|no-cors|[a-z-]{0,8})",
            ) {
                let t = trusted();
                let req = TestRequest::post()
                    .insert_header((header::COOKIE, "a=b"))
                    .insert_header((header::ORIGIN, origin.clone()))
                    .insert_header((header::REFERER, referer))
                    .insert_header(("sec-fetch-site", site))
                    .insert_header(("sec-fetch-mode", mode))
                    .to_http_request();
                let write = t.check_write(&req);
                let login = t.check_login(&req);
                let same_origin_null = origin == "null";
                if !same_origin_null && !t.is_trusted(&origin) {
                    prop_assert!(write.is_err(), "write from {origin:?} allowed");
                    prop_assert!(login.is_err(), "login from {origin:?} allowed");
                }
            }
        }
    }
}
