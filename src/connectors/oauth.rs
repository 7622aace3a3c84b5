//! The OAuth 2.0 client side of connecting: `state`, PKCE (S256), the authorize URL, and the
//! token endpoint (authorization-code and refresh grants).
//!
//! Plain reqwest rather than oauth2's `BasicClient`: Linear returns `scope` as a string or, for
//! older apps, a JSON array, and GitHub reports errors with HTTP 200 and sends scopes
//! comma-separated; oauth2's standard token and error types refuse both. oauth2 is also only
//! compiled into the auth role. The client never follows redirects and has short timeouts.

use crate::connectors::providers::Provider;
use crate::connectors::vault::Plain;
use crate::crypto::random;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// The outbound HTTP client for every provider call.
pub fn http_client(timeout_secs: u64) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(timeout_secs))
        .connect_timeout(Duration::from_secs(timeout_secs.min(5)))
        .user_agent(concat!(
            "switchboard-connectors/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

/// A fresh `state`: 43 URL-safe characters (256 bits).
pub fn new_state() -> Plain {
    Plain::new(random::string_from(random::URL_SAFE, 43))
}

/// What the database keeps of a state: its SHA-256, hex.
pub fn state_hash(state: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, state.as_bytes()))
}

/// A PKCE verifier (RFC 7636: 43–128 unreserved characters); 64 here.
pub fn new_verifier() -> Plain {
    Plain::new(random::string_from(random::URL_SAFE, 64))
}

/// `S256`: base64url(SHA-256(verifier)), unpadded.
pub fn challenge(verifier: &Plain) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(
        &digest::SHA256,
        verifier.expose().as_bytes(),
    ))
}

/// The URL the user's browser is sent to.
pub fn authorize_url(
    provider: &Provider,
    redirect_uri: &str,
    scopes: &[String],
    state: &Plain,
    verifier: &Plain,
) -> Result<String, url::ParseError> {
    let mut url = Url::parse(&provider.authorize_url)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(provider.scope_separator))
            .append_pair("state", state.expose())
            .append_pair("code_challenge", &challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        for (name, value) in &provider.authorize_params {
            q.append_pair(name, value);
        }
    }
    Ok(url.into())
}

/// What a token endpoint gave us.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: Plain,
    pub refresh_token: Option<Plain>,
    /// Seconds; `None` when the token does not expire (GitHub OAuth apps).
    pub expires_in: Option<i64>,
    /// `None` when the response named none (keep what was asked for or stored).
    pub scopes: Option<Vec<String>>,
}

/// Why a token endpoint call failed. Never carries a token, code or verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The grant (code or refresh token) is invalid, expired, revoked or used: retrying cannot
    /// help, the user must connect again.
    #[error("invalid_grant")]
    InvalidGrant,
    /// Any other OAuth error the provider named (e.g. `invalid_client`); the code is the
    /// provider's, sanitised.
    #[error("provider error {0}")]
    Rejected(String),
    /// Network failure, timeout, 5xx or 429: worth retrying later.
    #[error("transient: {0}")]
    Transient(String),
    /// A 2xx response without a usable token.
    #[error("malformed token response")]
    Malformed,
}

impl TokenError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// `grant_type=authorization_code`.
pub async fn exchange_code(
    http: &reqwest::Client,
    provider: &Provider,
    code: &str,
    redirect_uri: &str,
    verifier: &Plain,
) -> Result<TokenSet, TokenError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", provider.client_id.as_str()),
        ("client_secret", provider.client_secret.expose()),
        ("code_verifier", verifier.expose()),
    ];
    token_request(http, provider, &form).await
}

/// `grant_type=refresh_token`, client credentials in the body (both Linear and GitHub accept it).
pub async fn refresh_grant(
    http: &reqwest::Client,
    provider: &Provider,
    refresh_token: &Plain,
) -> Result<TokenSet, TokenError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", provider.client_id.as_str()),
        ("client_secret", provider.client_secret.expose()),
    ];
    token_request(http, provider, &form).await
}

async fn token_request(
    http: &reqwest::Client,
    provider: &Provider,
    form: &[(&str, &str)],
) -> Result<TokenSet, TokenError> {
    let response = http
        .post(&provider.token_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        // reqwest's error names the URL but never the form body.
        .map_err(|e| TokenError::Transient(without_url(e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| TokenError::Transient(without_url(e)))?;
    parse_token_response(status.as_u16(), &body)
}

fn without_url(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".to_owned()
    } else if err.is_connect() {
        "connect failed".to_owned()
    } else {
        err.without_url().to_string()
    }
}

/// Reads a token endpoint's answer: RFC 6749 JSON, Linear's scope quirks, GitHub's HTTP-200
/// errors, and a form-encoded body (GitHub without `Accept: application/json`).
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenSet, TokenError> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => form_to_json(body),
    };
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(classify(status, error));
    }
    if status == 429 || status >= 500 {
        return Err(TokenError::Transient(format!("HTTP {status}")));
    }
    if !(200..300).contains(&status) {
        return Err(TokenError::Rejected(format!("http_{status}")));
    }
    #[derive(Deserialize)]
    struct Raw {
        access_token: String,
        #[serde(default)]
        refresh_token: Option<String>,
        #[serde(default)]
        expires_in: Option<Value>,
        #[serde(default)]
        scope: Option<Value>,
    }
    let raw: Raw = serde_json::from_value(value).map_err(|_| TokenError::Malformed)?;
    if raw.access_token.is_empty() {
        return Err(TokenError::Malformed);
    }
    let expires_in = match raw.expires_in {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or(TokenError::Malformed)?),
        Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| TokenError::Malformed)?),
        Some(_) => return Err(TokenError::Malformed),
    };
    // A negative lifetime is nonsense, not "never expires": refused, like a fractional one.
    // Zero keeps meaning "no expiry given"; huge values are clamped where the date is computed.
    if expires_in.is_some_and(|s| s < 0) {
        return Err(TokenError::Malformed);
    }
    Ok(TokenSet {
        access_token: Plain::new(raw.access_token),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Plain::new),
        expires_in: expires_in.filter(|s| *s > 0),
        scopes: raw.scope.and_then(parse_scopes),
    })
}

fn classify(status: u16, error: &str) -> TokenError {
    match error {
        // GitHub's name for a bad, expired or reused code.
        "invalid_grant" | "bad_verification_code" | "bad_refresh_token" => TokenError::InvalidGrant,
        "temporarily_unavailable" | "server_error" | "slow_down" => {
            TokenError::Transient(error.to_owned())
        }
        _ if status >= 500 || status == 429 => TokenError::Transient(format!("HTTP {status}")),
        other => TokenError::Rejected(sanitize_code(other)),
    }
}

/// An error code safe to echo: lower-case letters, digits and `_`, at most 64.
pub fn sanitize_code(code: &str) -> String {
    let cleaned: String = code
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// `"read write"`, `"repo,gist"` or `["read","write"]`.
fn parse_scopes(value: Value) -> Option<Vec<String>> {
    let scopes: Vec<String> = match value {
        Value::String(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
            .collect(),
        _ => return None,
    };
    Some(scopes)
}

fn form_to_json(body: &[u8]) -> Value {
    let map: serde_json::Map<String, Value> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = Plain::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(new_verifier().expose().len(), 64);
        assert_ne!(new_state(), new_state());
    }

    #[test]
    fn reads_linear_and_github_token_shapes() {
        let linear = br#"{"access_token":"a","token_type":"Bearer","expires_in":86399,"scope":"read write","refresh_token":"r"}"#;
        let t = parse_token_response(200, linear).unwrap();
        assert_eq!(t.access_token.expose(), "a");
        assert_eq!(t.refresh_token.as_ref().map(Plain::expose), Some("r"));
        assert_eq!(t.expires_in, Some(86399));
        assert_eq!(t.scopes.unwrap(), vec!["read", "write"]);

        let old_linear = br#"{"access_token":"a","expires_in":"100","scope":["read","write"]}"#;
        let t = parse_token_response(200, old_linear).unwrap();
        assert_eq!(t.scopes.unwrap(), vec!["read", "write"]);
        assert_eq!(t.expires_in, Some(100));
        assert!(t.refresh_token.is_none());

        let github = br#"{"access_token":"gho_x","scope":"repo,gist","token_type":"bearer"}"#;
        let t = parse_token_response(200, github).unwrap();
        assert_eq!(t.scopes.unwrap(), vec!["repo", "gist"]);
        assert_eq!(t.expires_in, None);

        let form = b"access_token=gho_y&scope=repo&token_type=bearer";
        assert_eq!(
            parse_token_response(200, form)
                .unwrap()
                .access_token
                .expose(),
            "gho_y"
        );
    }

    #[test]
    fn classifies_errors() {
        let e = |s, b: &[u8]| parse_token_response(s, b).unwrap_err();
        assert_eq!(
            e(400, br#"{"error":"invalid_grant","error_description":"x"}"#),
            TokenError::InvalidGrant
        );
        assert_eq!(
            e(200, br#"{"error":"bad_verification_code"}"#),
            TokenError::InvalidGrant
        );
        assert_eq!(
            e(401, br#"{"error":"invalid_client"}"#),
            TokenError::Rejected("invalid_client".into())
        );
        assert!(e(503, b"<html>down</html>").is_transient());
        assert!(e(429, b"{}").is_transient());
        assert_eq!(e(200, br#"{"token_type":"bearer"}"#), TokenError::Malformed);
        // Lifetimes a provider cannot mean: refused, never a panic later.
        for body in [
            br#"{"access_token":"a","expires_in":-5}"#.as_slice(),
            br#"{"access_token":"a","expires_in":"-5"}"#,
            br#"{"access_token":"a","expires_in":1e300}"#,
            br#"{"access_token":"a","expires_in":"99999999999999999999999"}"#,
        ] {
            assert_eq!(e(200, body), TokenError::Malformed);
        }
        let huge = parse_token_response(
            200,
            br#"{"access_token":"a","expires_in":9223372036854775807}"#,
        )
        .unwrap();
        assert_eq!(
            huge.expires_in,
            Some(i64::MAX),
            "kept; clamped by expires_after"
        );
        assert_eq!(
            e(400, br#"{"error":"Bad <script>"}"#),
            TokenError::Rejected("bad__script_".into())
        );
    }
}
