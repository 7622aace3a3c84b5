//! Better Auth's cookies, byte for byte (spec §3): names with the `__Secure-` prefix on https,
//! values signed `value.base64(HMAC-SHA256(secret, value))` and URI-encoded, attributes in
//! better-call's order.

use crate::auth::links::encode_uri_component;
use crate::crypto::hmac;
use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "better-auth.";
const SIGNATURE_LEN: usize = 44;

/// The cookie names for this deployment.
#[derive(Debug, Clone)]
pub struct Cookies {
    secure: bool,
    secret: Vec<u8>,
    pub session_token: String,
    pub session_data: String,
    pub dont_remember: String,
    /// The signed OAuth `state` between sign-in/social (or link-social) and the callback.
    pub state: String,
}

impl Cookies {
    pub fn new(secret: &str, secure: bool) -> Self {
        let name = |n: &str| {
            if secure {
                format!("__Secure-{PREFIX}{n}")
            } else {
                format!("{PREFIX}{n}")
            }
        };
        Self {
            secure,
            secret: secret.as_bytes().to_vec(),
            session_token: name("session_token"),
            session_data: name("session_data"),
            dont_remember: name("dont_remember"),
            state: name("state"),
        }
    }

    /// `value.signature`, not yet URI-encoded.
    pub fn sign(&self, value: &str) -> String {
        let tag = hmac::sign(&self.secret, value.as_bytes());
        format!("{value}.{}", STANDARD.encode(tag))
    }

    /// A `Set-Cookie` value setting `name` to the signed `value`.
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut out = format!("{name}={}", encode_uri_component(&self.sign(value)));
        if let Some(age) = max_age {
            out.push_str(&format!("; Max-Age={age}"));
        }
        out.push_str("; Path=/; HttpOnly");
        if self.secure {
            out.push_str("; Secure");
        }
        out.push_str("; SameSite=Lax");
        out
    }

    /// A `Set-Cookie` value that expires `name`.
    pub fn expire(&self, name: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}=; Max-Age=0; Path=/; HttpOnly{secure}; SameSite=Lax")
    }

    /// The three cookies Better Auth clears on sign-out, in its order.
    pub fn clear_session(&self) -> [String; 3] {
        [
            self.expire(&self.session_token),
            self.expire(&self.session_data),
            self.expire(&self.dont_remember),
        ]
    }

    /// The verified value of a signed cookie, or `None` (missing, malformed or forged: all
    /// the same to the caller, as in Better Auth).
    pub fn read_signed(&self, req: &HttpRequest, name: &str) -> Option<String> {
        let raw = first_cookie(req, name)?;
        let raw = raw.trim_matches('"');
        let decoded = if raw.contains('%') {
            decode_uri_component(raw)?
        } else {
            raw.to_owned()
        };
        let (value, signature) = decoded.rsplit_once('.')?;
        if signature.len() != SIGNATURE_LEN || !signature.ends_with('=') {
            return None;
        }
        let tag = STANDARD.decode(signature).ok()?;
        hmac::verify(&self.secret, value.as_bytes(), &tag).then(|| value.to_owned())
    }
}

/// The first occurrence of cookie `name` across all `Cookie` headers.
fn first_cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request carries any cookie at all (the origin check keys on this).
pub fn has_cookie_header(req: &HttpRequest) -> bool {
    req.headers().contains_key(header::COOKIE)
}

/// JavaScript's `decodeURIComponent`; `None` where it would throw.
pub fn decode_uri_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly: `from_str_radix` alone would take `%+1` (JS throws).
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    // Spec §3.2 test vector.
    const SECRET: &str = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    const TOKEN: &str = "czCW6B9etUpH7zw4Ft1CXHeZhQnhhbjP";
    const WIRE: &str =
        "czCW6B9etUpH7zw4Ft1CXHeZhQnhhbjP.7xv0smgZqWONvPWr0lDIWWTtGwqWXuTpqR0%2B%2FKEF7v0%3D";

    #[test]
    fn signs_exactly_like_better_auth() {
        let c = Cookies::new(SECRET, false);
        assert_eq!(
            c.sign(TOKEN),
            format!("{TOKEN}.7xv0smgZqWONvPWr0lDIWWTtGwqWXuTpqR0+/KEF7v0=")
        );
        assert_eq!(
            c.sign("true"),
            "true.1Ue91JS+cwPpyhFiSTriJ9vlBOt6RG78rdQqJ+TjbEk="
        );
        assert_eq!(
            c.set(&c.session_token, TOKEN, Some(604800)),
            format!(
                "better-auth.session_token={WIRE}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"
            )
        );
        assert_eq!(
            c.set(&c.dont_remember, "true", None),
            "better-auth.dont_remember=true.1Ue91JS%2BcwPpyhFiSTriJ9vlBOt6RG78rdQqJ%2BTjbEk%3D; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn secure_names_and_attributes() {
        let c = Cookies::new(SECRET, true);
        assert_eq!(c.session_token, "__Secure-better-auth.session_token");
        assert!(
            c.set(&c.session_token, TOKEN, None)
                .ends_with("; Path=/; HttpOnly; Secure; SameSite=Lax")
        );
        assert_eq!(
            c.clear_session()[0],
            "__Secure-better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn clears_three_cookies_in_order() {
        let c = Cookies::new(SECRET, false);
        assert_eq!(
            c.clear_session(),
            [
                "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax".to_owned(),
                "better-auth.session_data=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax".to_owned(),
                "better-auth.dont_remember=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax".to_owned(),
            ]
        );
    }

    #[test]
    fn reads_valid_and_rejects_forged_cookies() {
        let c = Cookies::new(SECRET, false);
        let req = TestRequest::default()
            .insert_header((
                header::COOKIE,
                format!("other=1; better-auth.session_token={WIRE}"),
            ))
            .to_http_request();
        assert_eq!(
            c.read_signed(&req, &c.session_token).as_deref(),
            Some(TOKEN)
        );

        let forged = WIRE.replace("czCW", "xzCW");
        let req = TestRequest::default()
            .insert_header((
                header::COOKIE,
                format!("better-auth.session_token={forged}"),
            ))
            .to_http_request();
        assert_eq!(c.read_signed(&req, &c.session_token), None);

        let unsigned = TestRequest::default()
            .insert_header((header::COOKIE, format!("better-auth.session_token={TOKEN}")))
            .to_http_request();
        assert_eq!(c.read_signed(&unsigned, &c.session_token), None);

        // A secure deployment reads only the prefixed name.
        let secure = Cookies::new(SECRET, true);
        let req = TestRequest::default()
            .insert_header((header::COOKIE, format!("better-auth.session_token={WIRE}")))
            .to_http_request();
        assert_eq!(secure.read_signed(&req, &secure.session_token), None);
    }

    #[test]
    fn the_first_occurrence_wins() {
        let c = Cookies::new(SECRET, false);
        let req = TestRequest::default()
            .insert_header((
                header::COOKIE,
                format!("better-auth.session_token={WIRE}; better-auth.session_token=junk"),
            ))
            .to_http_request();
        assert_eq!(
            c.read_signed(&req, &c.session_token).as_deref(),
            Some(TOKEN)
        );
    }

    #[test]
    fn uri_component_round_trip() {
        assert_eq!(encode_uri_component("a+b/c=d é"), "a%2Bb%2Fc%3Dd%20%C3%A9");
        assert_eq!(
            decode_uri_component("a%2Bb%2Fc%3Dd%20%C3%A9").as_deref(),
            Some("a+b/c=d é")
        );
        assert_eq!(decode_uri_component("%E0%A4%A"), None);
    }

    #[test]
    fn a_sign_is_not_a_hex_digit() {
        // `u8::from_str_radix("+1", 16)` is Ok(1); decodeURIComponent throws on `%+1`.
        assert_eq!(decode_uri_component("%+1"), None);
        assert_eq!(decode_uri_component("%-1"), None);
        assert_eq!(decode_uri_component("%2B1"), Some("+1".to_owned()));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Header-safe text (visible ASCII and spaces), as a `Cookie` header can carry it.
        const HEADER_TEXT: &str = "[ -~]{0,120}";

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_cookie_header_is_read_without_panicking(raw in HEADER_TEXT, name in "[a-z_.]{1,20}") {
                let c = Cookies::new(SECRET, false);
                let req = TestRequest::default()
                    .insert_header((header::COOKIE, raw.clone()))
                    .to_http_request();
                // Whatever comes back must carry a valid signature of itself.
                if let Some(value) = c.read_signed(&req, &name) {
                    prop_assert!(raw.contains(&name));
                    let wire = c.sign(&value);
                    prop_assert!(wire.starts_with(&encode_uri_component(&value)));
                }
            }

            #[test]
            fn a_forged_signature_never_verifies(value in "[A-Za-z0-9]{1,40}", sig in "[A-Za-z0-9+/]{43}=") {
                let c = Cookies::new(SECRET, false);
                let forged = format!("{value}.{sig}");
                prop_assume!(forged != c.sign(&value) && encode_uri_component(&forged) != c.sign(&value));
                let req = TestRequest::default()
                    .insert_header((header::COOKIE, format!("better-auth.session_token={}", encode_uri_component(&forged))))
                    .to_http_request();
                prop_assert_eq!(c.read_signed(&req, "better-auth.session_token"), None);
            }

            #[test]
            fn decoding_undoes_encoding(s in "\\PC{0,40}") {
                prop_assert_eq!(decode_uri_component(&encode_uri_component(&s)), Some(s));
            }

            #[test]
            fn decoding_never_panics_and_refuses_bad_escapes(s in "(%|%[0-9a-fA-F+-]{0,2}|[a-z]|é)*") {
                let decoded = decode_uri_component(&s);
                // A `%` not followed by two hex digits is an error, as in JavaScript.
                let bytes = s.as_bytes();
                let malformed = bytes.iter().enumerate().any(|(i, b)| {
                    *b == b'%'
                        && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                });
                if malformed {
                    prop_assert_eq!(decoded, None);
                }
            }
        }
    }
}
