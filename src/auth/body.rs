//! Request bodies the way Better Auth reads them (spec §1): JSON (or form-urlencoded where it
//! allows), absent bodies as `{}`, zod-style `VALIDATION_ERROR` messages naming each field.

use crate::auth::error::{AuthError, Code};
use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Bytes;
use serde_json::{Map, Value};

/// Which media types an endpoint takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    Json,
    JsonOrForm,
}

/// Parses the raw body into a JSON value (`{}` when there is none).
pub fn parse(req: &HttpRequest, bytes: &Bytes, accepts: Accepts) -> Result<Value, AuthError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let Some(content_type) = content_type.filter(|_| !bytes.is_empty()) else {
        return Ok(Value::Object(Map::new()));
    };
    match content_type.as_str() {
        "application/json" => {
            serde_json::from_slice(bytes).map_err(|_| AuthError::bad_request(Code::BadRequest))
        }
        "application/x-www-form-urlencoded" if accepts == Accepts::JsonOrForm => {
            let pairs: Vec<(String, String)> = serde_urlencoded_pairs(bytes);
            Ok(Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ))
        }
        _ => Err(AuthError::Api(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
        )),
    }
}

fn serde_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn js_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A typed request body: the struct that documents a body (`ToSchema`) is the one the handler
/// receives, read field by field with [`Fields`] so every problem is reported at once, with
/// Better Auth's messages. A field that fails leaves its default behind; [`FromFields::read`]
/// then answers the collected problems instead of the value.
pub trait FromFields: Sized {
    /// Reads every field (a wrong one records its problem on `f`).
    fn from_fields(f: &mut Fields<'_>) -> Self;

    /// Checks that need the whole body, after the fields passed.
    fn check(self, _body: &Value) -> Result<Self, AuthError> {
        Ok(self)
    }

    /// Reads `body` (as [`parse`] returns it).
    fn read(body: &Value) -> Result<Self, AuthError> {
        let mut f = Fields::new(body);
        let value = Self::from_fields(&mut f);
        f.finish()?;
        value.check(body)
    }
}

/// Reads fields off a body, collecting every problem before failing, as zod does.
pub struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    errors: Vec<String>,
    /// Every field name asked for, in order (the OpenAPI test compares them with the schema).
    #[cfg(test)]
    pub(crate) asked: Vec<String>,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Value) -> Self {
        Self {
            map: body.as_object(),
            errors: Vec::new(),
            #[cfg(test)]
            asked: Vec::new(),
        }
    }

    fn get(&mut self, name: &str) -> Option<&'a Value> {
        #[cfg(test)]
        self.asked.push(name.to_owned());
        self.map.and_then(|m| m.get(name))
    }

    fn wrong(&mut self, name: &str, expected: &str, got: Option<&Value>) {
        let received = got.map(js_type).unwrap_or("undefined");
        self.errors.push(format!(
            "[body.{name}] Invalid input: expected {expected}, received {received}"
        ));
    }

    /// PostgreSQL text cannot hold NUL, so a NUL anywhere is a validation error, not a 500; and
    /// every field with a documented cap ([`limit_of`]) is held to it here, before any query.
    fn checked(&mut self, name: &str, s: &str) -> Option<String> {
        if s.contains('\0') {
            self.errors.push(format!(
                "[body.{name}] Invalid input: NUL characters are not allowed"
            ));
            return None;
        }
        if let Some(limit) = limit_of(name) {
            let chars = s.chars().count();
            if chars > limit.max_chars {
                self.errors.push(format!(
                    "[body.{name}] Too big: expected string to have <={} characters",
                    limit.max_chars
                ));
                return None;
            }
            if limit.http_url && !s.is_empty() && !is_http_url(s) {
                self.errors.push(format!(
                    "[body.{name}] Invalid input: expected an http(s) URL"
                ));
                return None;
            }
        }
        Some(s.to_owned())
    }

    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.get(name) {
            Some(Value::String(s)) => self.checked(name, s),
            other => {
                self.wrong(name, "string", other);
                None
            }
        }
    }

    /// A required string of at least one character.
    pub fn non_empty(&mut self, name: &str) -> Option<String> {
        let value = self.string(name)?;
        if value.is_empty() {
            self.errors.push(format!(
                "[body.{name}] Too small: expected string to have >=1 characters"
            ));
            return None;
        }
        Some(value)
    }

    pub fn opt_string(&mut self, name: &str) -> Option<String> {
        match self.get(name) {
            None => None,
            Some(Value::String(s)) => self.checked(name, s),
            Some(other) => {
                self.wrong(name, "string", Some(other));
                None
            }
        }
    }

    /// `Some(None)` for an explicit `null`.
    pub fn opt_nullable_string(&mut self, name: &str) -> Option<Option<String>> {
        match self.get(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => self.checked(name, s).map(Some),
            Some(other) => {
                self.wrong(name, "string", Some(other));
                None
            }
        }
    }

    pub fn opt_bool(&mut self, name: &str) -> Option<bool> {
        match self.get(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            // Form bodies carry booleans as text.
            Some(Value::String(s)) if s == "true" => Some(true),
            Some(Value::String(s)) if s == "false" => Some(false),
            Some(other) => {
                self.wrong(name, "boolean", Some(other));
                None
            }
        }
    }

    /// A required string that passes zod's email check.
    pub fn email(&mut self, name: &str) -> Option<String> {
        let value = self.string(name)?;
        if !is_email(&value) {
            self.errors
                .push(format!("[body.{name}] Invalid email address"));
            return None;
        }
        Some(value)
    }

    /// Fails with every collected problem, joined by `; `.
    pub fn finish(self) -> Result<(), AuthError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Validation(self.errors.join("; ")))
        }
    }
}

/// The longest email address RFC 5321 allows through a mail path, and our cap on every email
/// field (Better Auth has none; a 3,000-character one failed in the unique index as a 500).
pub const MAX_EMAIL_CHARS: usize = 254;
/// A display name: generous, but small enough that a JWT carrying it stays far below the
/// connectors role's 8 KB token limit.
pub const MAX_NAME_CHARS: usize = 256;
/// An avatar URL.
pub const MAX_IMAGE_CHARS: usize = 2048;

/// A documented cap on a body field, by the field's name (README "Input limits").
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_chars: usize,
    /// Must be an absolute `http:` or `https:` URL (no `javascript:`, no `data:`).
    pub http_url: bool,
}

pub fn limit_of(name: &str) -> Option<Limit> {
    let (max_chars, http_url) = match name {
        "email" | "newEmail" => (MAX_EMAIL_CHARS, false),
        "name" => (MAX_NAME_CHARS, false),
        "image" => (MAX_IMAGE_CHARS, true),
        "callbackURL" | "newUserCallbackURL" | "errorCallbackURL" | "redirectTo" => {
            (crate::platform::redirect::MAX_TARGET_LEN, false)
        }
        _ => return None,
    };
    Some(Limit {
        max_chars,
        http_url,
    })
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// zod v4's default email check (ASCII only):
/// `^(?:[A-Za-z0-9_'+\-]+\.)*[A-Za-z0-9_'+\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$`
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    let local_char = |c: u8| c.is_ascii_alphanumeric() || b"_'+-".contains(&c);
    let local_ok = !local.is_empty()
        && local
            .split('.')
            .all(|seg| !seg.is_empty() && seg.bytes().all(local_char))
        && local.bytes().last().is_some_and(|c| c != b'\'');
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels[..labels.len() - 1].iter().all(|l| {
            l.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zod_email_rules() {
        for good in [
            "a@b.co",
            "alice@example.com",
            "a.b+c@x-y.example.org",
            "o'neil@ex.com",
        ] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "a@b",
            "a..b@c.com",
            "a@localhost",
            ".a@b.com",
            "a.@b.com",
            "a'@b.com",
            "é@b.com",
            "a@b.c",
            "a@-b.com",
            "a@b@c.com",
            "",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn collects_zod_style_messages() {
        let body = json!({"email": "nope", "name": 5});
        let mut f = Fields::new(&body);
        f.string("name");
        f.email("email");
        f.string("password");
        let err = f.finish().unwrap_err().to_string();
        assert_eq!(
            err,
            "[body.name] Invalid input: expected string, received number; [body.email] Invalid email address; [body.password] Invalid input: expected string, received undefined"
        );
    }

    #[test]
    fn documented_caps_hold_before_anything_else_reads_the_field() {
        let long_email = format!("{}@example.com", "a".repeat(3000));
        let body = json!({
            "email": long_email,
            "name": "n".repeat(MAX_NAME_CHARS + 1),
            "image": "javascript:alert(1)",
            "callbackURL": format!("/{}", "x".repeat(2048)),
        });
        let mut f = Fields::new(&body);
        assert_eq!(f.email("email"), None);
        assert_eq!(f.opt_string("name"), None);
        assert_eq!(f.opt_nullable_string("image"), None);
        assert_eq!(f.opt_string("callbackURL"), None);
        let err = f.finish().unwrap_err().to_string();
        assert_eq!(
            err,
            "[body.email] Too big: expected string to have <=254 characters; \
             [body.name] Too big: expected string to have <=256 characters; \
             [body.image] Invalid input: expected an http(s) URL; \
             [body.callbackURL] Too big: expected string to have <=2048 characters"
        );
        for bad in [
            "data:image/png;base64,AAAA",
            "javascript:x",
            "/relative.png",
            "ftp://h/x",
        ] {
            let body = json!({ "image": bad });
            let mut f = Fields::new(&body);
            assert_eq!(f.opt_nullable_string("image"), None, "{bad}");
        }
        let body = json!({
            "email": format!("{}@example.com", "a".repeat(242)),
            "name": "é".repeat(MAX_NAME_CHARS),
            "image": "https://avatars.example.com/u/1?v=4",
        });
        let mut f = Fields::new(&body);
        assert!(f.email("email").is_some());
        assert!(f.string("name").is_some());
        assert!(f.opt_nullable_string("image").is_some());
        assert!(f.finish().is_ok());
    }
}
