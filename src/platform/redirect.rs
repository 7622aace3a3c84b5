//! The one check every redirect passes, in both roles: it reads the exact string that goes into
//! `Location`, after the URL is built, the way a browser will read it (WHATWG URL parsing).
//!
//! A relative target must be a path on this host that normalises to itself: no dot segments, no
//! `//` or backslash that a browser reads as another host, no encoded slash in the path. An
//! absolute target must be http(s) or an app scheme, and its origin must satisfy the caller's
//! trust rule (the role decides which origins it trusts; this module knows neither role).

use url::{Position, Url};

/// Longest `Location` we send: a 2,048-character client target plus the parameters we add.
pub const MAX_LOCATION_LEN: usize = 4096;
/// Longest redirect target (`callbackURL`, `redirect_to`, …) a client may hand us.
pub const MAX_TARGET_LEN: usize = 2048;

/// Stands in for "this host" when a relative target is resolved.
const PLACEHOLDER: &str = "http://relative.invalid";

/// Why a redirect target was refused (for logs; clients see a generic refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("empty or longer than {MAX_LOCATION_LEN} bytes")]
    Length,
    #[error("contains a control character, a space or a backslash")]
    Characters,
    #[error("a relative target that does not normalise to itself")]
    NotCanonical,
    #[error("not a URL")]
    NotAUrl,
    #[error("a scheme that runs code or reads local data")]
    Scheme,
    #[error("an origin that is not trusted")]
    Untrusted,
}

/// Checks `location`, exactly as it will be sent. `trusted` decides absolute URLs (already
/// parsed, so it sees the host a browser will see); relative paths never reach it.
pub fn check_location(location: &str, trusted: impl Fn(&Url) -> bool) -> Result<(), Refused> {
    if location.is_empty() || location.len() > MAX_LOCATION_LEN {
        return Err(Refused::Length);
    }
    // Browsers drop tabs and newlines from URLs and read `\` as `/`; nothing we build contains
    // them, so a target that does is refused rather than guessed at.
    if location
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(Refused::Characters);
    }
    if location.starts_with('/') {
        return check_relative(location);
    }
    let url = Url::parse(location).map_err(|_| Refused::NotAUrl)?;
    if matches!(
        url.scheme(),
        "javascript" | "data" | "vbscript" | "file" | "blob" | "about" | "filesystem"
    ) {
        return Err(Refused::Scheme);
    }
    if trusted(&url) {
        Ok(())
    } else {
        Err(Refused::Untrusted)
    }
}

/// A path-absolute reference (`/…`) that stays on this host and means what it says.
pub fn check_relative(target: &str) -> Result<(), Refused> {
    if !target.starts_with('/') || target.starts_with("//") {
        return Err(Refused::NotCanonical);
    }
    if target
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(Refused::Characters);
    }
    let base = Url::parse(PLACEHOLDER).map_err(|_| Refused::NotAUrl)?;
    let resolved = base.join(target).map_err(|_| Refused::NotAUrl)?;
    if resolved.origin() != base.origin() || &resolved[Position::BeforePath..] != target {
        return Err(Refused::NotCanonical);
    }
    // An encoded slash or backslash in the path is harmless to a browser, but a server that
    // decodes it and redirects again would see `//host`.
    let path = resolved.path().to_ascii_lowercase();
    if path.contains("%2f") || path.contains("%5c") {
        return Err(Refused::NotCanonical);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn only(host: &'static str) -> impl Fn(&Url) -> bool {
        move |u: &Url| u.host_str() == Some(host) && matches!(u.scheme(), "http" | "https")
    }

    /// Killed cargo-mutants survivors: the length bound at its edge, and the character rule on
    /// absolute URLs (the URL parser would otherwise strip a tab or read `\\` as `/` and let a
    /// trusted host through) and on relative ones (refused as `Characters`, before normalising).
    #[test]
    fn the_length_edge_and_the_character_rule_hold_on_their_own() {
        let at_limit = format!("/{}", "a".repeat(MAX_LOCATION_LEN - 1));
        assert_eq!(check_location(&at_limit, only("app.test")), Ok(()));
        let over = format!("/{}", "a".repeat(MAX_LOCATION_LEN));
        assert_eq!(
            check_location(&over, only("app.test")),
            Err(Refused::Length)
        );
        for bad in [
            "https://app.test/a\tb",
            "https://app.test/a b",
            "https://app.test\\evil.com",
            "https://app.test/\u{1}",
        ] {
            assert_eq!(
                check_location(bad, only("app.test")),
                Err(Refused::Characters),
                "{bad:?}"
            );
        }
        for bad in ["/a\tb", "/a b", "/a\\b", "/\u{1}"] {
            assert_eq!(check_relative(bad), Err(Refused::Characters), "{bad:?}");
        }
    }

    #[test]
    fn relative_targets_must_normalise_to_themselves() {
        for good in [
            "/",
            "/verified",
            "/a/b?x=1&next=%2Fhome#frag",
            "/verified?error=INVALID_TOKEN",
            "/%C3%A9t%C3%A9",
        ] {
            assert_eq!(check_location(good, only("app.test")), Ok(()), "{good}");
        }
        for bad in [
            "//evil.com/phish",
            "/.//evil.com/phish",
            "/a/..//evil.com",
            "/%2e//evil.com",
            "/%2E%2E//evil.com",
            "/./x",
            "/x/.",
            "/\\evil.com",
            "/\tevil",
            "/a b",
            "/%2F%2Fevil.com",
            "/a%5cb",
            "/é",
            "",
        ] {
            assert!(check_location(bad, only("app.test")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absolute_targets_need_a_trusted_origin() {
        let t = only("app.test");
        assert_eq!(check_location("https://app.test/x?y=1", &t), Ok(()));
        for bad in [
            "https://evil.com/",
            "https://app.test@evil.com/",
            "https:evil.com",
            "http:/evil.com",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.com",
            "?x=1",
        ] {
            assert!(check_location(bad, &t).is_err(), "{bad:?}");
        }
        let long = format!("https://app.test/{}", "a".repeat(MAX_LOCATION_LEN));
        assert_eq!(check_location(&long, &t), Err(Refused::Length));
    }

    /// What a browser does with a `Location` that passed: resolve it against our origin.
    fn lands_on(location: &str) -> Option<String> {
        let base = Url::parse("https://auth.test/api/auth/verify-email").ok()?;
        base.join(location).ok()?.host_str().map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Random and adversarial strings: whatever passes lands on our host or the trusted one.
        #[test]
        fn an_accepted_location_never_leaves_the_trusted_hosts(
            s in prop_oneof![
                ".{0,40}",
                "(/|//|\\\\|\\.|\\.\\.|%2e|%2E|%2f|%5c|%252e|@|:|evil\\.com|app\\.test|https:|http:|\\?|#|\t| )*",
            ]
        ) {
            if check_location(&s, only("app.test")).is_ok() {
                let host = lands_on(&s);
                prop_assert!(
                    matches!(host.as_deref(), Some("auth.test" | "app.test")),
                    "{s:?} lands on {host:?}"
                );
            }
        }

        /// A relative target that passes is exactly what a browser resolves it to.
        #[test]
        fn an_accepted_relative_target_is_canonical(s in "/[a-z./%2eE?#=&]{0,30}") {
            if check_relative(&s).is_ok() {
                let base = Url::parse(PLACEHOLDER).unwrap();
                let joined = base.join(&s).unwrap();
                prop_assert_eq!(&joined[Position::BeforePath..], s.as_str());
            }
        }
    }
}
