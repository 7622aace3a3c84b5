//! The token Better Auth's JWT plugin writes: header `{alg, kid}` (no `typ`), payload `iat`, the
//! user object as get-session returns it, then `sub`, `exp`, `iss`, `aud`. No `jti`, no `nbf`.

use super::JwtError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use josekit::jws::JwsSigner;
use serde_json::{Map, Value, json};

/// Claims the signer sets itself; a user field of the same name does not override them.
const REGISTERED: &[&str] = &["iat", "sub", "exp", "iss", "aud"];

pub struct TokenSpec<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub expires_in_secs: i64,
}

pub fn payload(
    user: &Value,
    spec: &TokenSpec<'_>,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, JwtError> {
    let fields = user
        .as_object()
        .ok_or(JwtError::InvalidUser("not an object"))?;
    let sub = fields
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or(JwtError::InvalidUser("no id"))?
        .to_owned();
    let iat = now.timestamp();
    let mut claims = Map::new();
    claims.insert("iat".into(), json!(iat));
    for (name, value) in fields {
        if !REGISTERED.contains(&name.as_str()) {
            claims.insert(name.clone(), value.clone());
        }
    }
    claims.insert("sub".into(), json!(sub));
    claims.insert("exp".into(), json!(iat + spec.expires_in_secs));
    claims.insert("iss".into(), json!(spec.issuer));
    claims.insert("aud".into(), json!(spec.audience));
    Ok(claims)
}

/// Compact JWS over `claims`.
pub fn sign(
    signer: &dyn JwsSigner,
    kid: &str,
    alg: &str,
    claims: &Map<String, Value>,
) -> Result<String, JwtError> {
    let header = json!({ "alg": alg, "kid": kid });
    let header = serde_json::to_vec(&header).map_err(|e| JwtError::Key(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| JwtError::Key(e.to_string()))?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = signer
        .sign(token.as_bytes())
        .map_err(|e| JwtError::Key(e.to_string()))?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}
