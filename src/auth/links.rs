//! Emailed links and redirect targets, built as Better Auth builds them: `encodeURIComponent`
//! for link parameters, `URL.searchParams.set` for the query a redirect adds.

use url::Url;

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is
/// percent-encoded as UTF-8.
pub fn encode_uri_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `URL.searchParams.set(key, value)` on `target`: an existing `key` is replaced, other
/// parameters and the fragment stay. A relative target (`/verified`) stays relative.
pub fn set_search_param(target: &str, key: &str, value: &str) -> String {
    const PLACEHOLDER: &str = "http://relative.invalid";
    let (mut url, relative) = match Url::parse(target) {
        Ok(url) => (url, false),
        Err(_) => match Url::parse(PLACEHOLDER).and_then(|base| base.join(target)) {
            Ok(url) => (url, true),
            // Not even a relative URL: append as Better Auth's string concatenation would.
            Err(_) => {
                let sep = if target.contains('?') { '&' } else { '?' };
                return format!("{target}{sep}{key}={}", encode_uri_component(value));
            }
        },
    };
    set_on(&mut url, key, value);
    if relative {
        url.as_str()[PLACEHOLDER.len()..].to_owned()
    } else {
        url.into()
    }
}

/// `new URL(target, base)` then `searchParams.set(key, value)`: Better Auth's `redirectCallback`
/// and `redirectError`, which make a relative target absolute on the auth server's origin.
pub fn resolve_with_param(base: &str, target: &str, key: &str, value: &str) -> String {
    match Url::parse(base).and_then(|b| b.join(target)) {
        Ok(mut url) => {
            set_on(&mut url, key, value);
            url.into()
        }
        Err(_) => set_search_param(target, key, value),
    }
}

fn set_on(url: &mut Url, key: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_javascript() {
        assert_eq!(
            encode_uri_component("http://localhost:5173/reset"),
            "http%3A%2F%2Flocalhost%3A5173%2Freset"
        );
        assert_eq!(encode_uri_component("/"), "%2F");
        assert_eq!(
            encode_uri_component("a b&c=d!~*'()é"),
            "a%20b%26c%3Dd!~*'()%C3%A9"
        );
    }

    #[test]
    fn sets_search_params() {
        assert_eq!(
            set_search_param("http://localhost:5173/verified", "error", "INVALID_TOKEN"),
            "http://localhost:5173/verified?error=INVALID_TOKEN"
        );
        assert_eq!(
            set_search_param("http://h/v?a=1&error=x#frag", "error", "TOKEN_EXPIRED"),
            "http://h/v?a=1&error=TOKEN_EXPIRED#frag"
        );
        assert_eq!(
            set_search_param("/verified?next=%2Fhome", "error", "INVALID_TOKEN"),
            "/verified?next=%2Fhome&error=INVALID_TOKEN"
        );
        assert_eq!(set_search_param("/", "token", "abc"), "/?token=abc");
    }

    #[test]
    fn resolves_relative_targets_on_the_base() {
        assert_eq!(
            resolve_with_param("http://127.0.0.1:3111/api/auth", "/reset", "token", "t1"),
            "http://127.0.0.1:3111/reset?token=t1"
        );
        assert_eq!(
            resolve_with_param(
                "http://127.0.0.1:3111/api/auth",
                "http://localhost:5173/reset?x=1",
                "token",
                "t1"
            ),
            "http://localhost:5173/reset?x=1&token=t1"
        );
    }
}
