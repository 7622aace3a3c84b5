//! Email-verification tokens exactly as Better Auth builds them (spec §8.1): an HS256 JWT keyed
//! by the `BETTER_AUTH_SECRET` bytes, header `{"alg":"HS256"}`, so links already in inboxes work.

use crate::crypto::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `requestType` of a change-email token mailed to the new address.
pub const CHANGE_EMAIL_VERIFICATION: &str = "change-email-verification";

/// The payload, keys in Better Auth's order; absent options are left out, as `JSON.stringify`
/// leaves out `undefined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    /// Added in recent Better Auth versions; tokens from older ones lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Ours, on change-email tokens only: the id of the `verification` row that makes the
    /// token single use (`change-email:<jti>`). Better Auth's tokens have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused; the two map to `INVALID_TOKEN` and `TOKEN_EXPIRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
}

/// The fixed protected header, `{"alg":"HS256"}`, encoded once.
const HEADER: &str = "eyJhbGciOiJIUzI1NiJ9";

pub fn sign(secret: &[u8], claims: &Claims) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{HEADER}.{}", URL_SAFE_NO_PAD.encode(payload));
    let tag = hmac::sign(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A token for `email` (lower-cased) that lives `expires_in_secs` from `now`.
pub fn issue(
    secret: &[u8],
    email: &str,
    user_id: &str,
    now: DateTime<Utc>,
    expires_in_secs: i64,
) -> String {
    issue_claims(secret, email, None, user_id, now, expires_in_secs)
}

/// A change-email token moving `email` to `update_to`: single use through `jti`.
pub fn issue_change_email(
    secret: &[u8],
    email: &str,
    update_to: &str,
    user_id: &str,
    jti: &str,
    now: DateTime<Utc>,
    expires_in_secs: i64,
) -> String {
    issue_claims(
        secret,
        email,
        Some((update_to, jti)),
        user_id,
        now,
        expires_in_secs,
    )
}

fn issue_claims(
    secret: &[u8],
    email: &str,
    change: Option<(&str, &str)>,
    user_id: &str,
    now: DateTime<Utc>,
    expires_in_secs: i64,
) -> String {
    let iat = now.timestamp();
    sign(
        secret,
        &Claims {
            email: email.to_lowercase(),
            update_to: change.map(|(to, _)| to.to_owned()),
            request_type: change.map(|_| CHANGE_EMAIL_VERIFICATION.to_owned()),
            user_id: Some(user_id.to_owned()),
            jti: change.map(|(_, jti)| jti.to_owned()),
            iat,
            exp: iat + expires_in_secs,
        },
    )
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Verifies as `jose.jwtVerify(token, secret, {algorithms: ["HS256"]})` does: HS256 only, the
/// signature compared in constant time, expired when `exp <= now` (seconds).
pub fn verify(secret: &[u8], token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Invalid)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Invalid)?;
    if header.alg != "HS256" {
        return Err(TokenError::Invalid);
    }
    let signing_input = &token[..token.len() - signature.len() - 1];
    if !hmac::verify(secret, signing_input.as_bytes(), &decode(signature)?) {
        return Err(TokenError::Invalid);
    }
    let claims: Claims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Invalid)?;
    if claims.exp <= now.timestamp() {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    /// Issued by Better Auth 1.7.25 (spec §8.1).
    const SAMPLE: &str = "eyJhbGciOiJIUzI1NiJ9.eyJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwidXNlcklkIjoiN0x5eDNYc1NTMXk4NDZuZDk3UmlPTWhlWG56MTd1VEgiLCJpYXQiOjE3OTU2MjQ2MTIsImV4cCI6MTc5NTYyODIxMn0.dyebuTvBkLTADrAGjVaIY7WD-s3a52RVcZ03_hx-w3U";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn verifies_better_auths_sample_token() {
        let claims = verify(SECRET, SAMPLE, at(1_795_624_700)).unwrap();
        assert_eq!(claims.email, "alice@example.com");
        assert_eq!(
            claims.user_id.as_deref(),
            Some("7Lyx3XsSS1y846nd97RiOMheXnz17uTH")
        );
        assert_eq!((claims.iat, claims.exp), (1_795_624_612, 1_795_628_212));
        assert_eq!(claims.update_to, None);
        // One second before exp is fine; at exp it has expired (jose: exp <= now).
        assert!(verify(SECRET, SAMPLE, at(1_795_628_211)).is_ok());
        assert_eq!(
            verify(SECRET, SAMPLE, at(1_795_628_212)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn signs_byte_for_byte_as_better_auth() {
        let token = issue(
            SECRET,
            "Alice@Example.com",
            "7Lyx3XsSS1y846nd97RiOMheXnz17uTH",
            at(1_795_624_612),
            3600,
        );
        assert_eq!(token, SAMPLE);
    }

    #[test]
    fn change_email_claims_keep_better_auths_key_order() {
        let token = issue_change_email(SECRET, "a@x.com", "b@x.com", "u1", "j1", at(100), 3600);
        let payload = token.split('.').nth(1).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"email":"a@x.com","updateTo":"b@x.com","requestType":"change-email-verification","userId":"u1","jti":"j1","iat":100,"exp":3700}"#
        );
        let claims = verify(SECRET, &token, at(200)).unwrap();
        assert_eq!(claims.update_to.as_deref(), Some("b@x.com"));
        assert_eq!(claims.jti.as_deref(), Some("j1"));
    }

    #[test]
    fn refuses_tampering_other_keys_and_other_algorithms() {
        let now = at(1_795_624_700);
        assert_eq!(
            verify(b"another-secret", SAMPLE, now),
            Err(TokenError::Invalid)
        );
        // Claims swapped for another user's, signature kept.
        let forged_payload = URL_SAFE_NO_PAD
            .encode(br#"{"email":"mallory@example.com","iat":1795624612,"exp":1795628212}"#);
        let parts: Vec<&str> = SAMPLE.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(SECRET, &forged, now), Err(TokenError::Invalid));
        // alg=none, and an HS512 header over a valid HS256 signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(verify(SECRET, &none, now), Err(TokenError::Invalid));
        let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512"}"#);
        let input = format!("{hs512}.{}", parts[1]);
        let sig = URL_SAFE_NO_PAD.encode(hmac::sign(SECRET, input.as_bytes()));
        assert_eq!(
            verify(SECRET, &format!("{input}.{sig}"), now),
            Err(TokenError::Invalid)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(
                verify(SECRET, junk, now),
                Err(TokenError::Invalid),
                "{junk}"
            );
        }
    }
}
