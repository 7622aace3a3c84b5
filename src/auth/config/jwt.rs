//! `[auth.jwt]`: the JWT plugin's signing keys and tokens.

use serde::Deserialize;

/// How long downstream caches may keep the JWKS (`Cache-Control: max-age`).
pub const JWKS_MAX_AGE_SECS: u64 = 300;
/// How often an auth process re-reads the key set, so another process's rotation is seen.
pub const JWT_KEY_RELOAD_SECS: u64 = 30;

/// The JWT plugin: signing keys in the `jwks` table and the tokens signed with them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Algorithm of newly generated keys.
    pub alg: crate::crypto::Algorithm,
    /// `iss`; `None` = the `BETTER_AUTH_URL` origin (Better Auth's default).
    pub issuer: Option<String>,
    /// `aud`; `None` = the `BETTER_AUTH_URL` origin.
    pub audience: Option<String>,
    /// `exp - iat`.
    pub expires_in_secs: u64,
    /// Rotate automatically when the signing key is this old; `None` = only `keys rotate`.
    pub rotation_interval_secs: Option<u64>,
    /// How long a retired key stays in the JWKS after it stops signing.
    pub grace_period_secs: u64,
    /// How long a rotated-in key is published (first served in a JWKS) before it signs, so
    /// every JWKS cache that honours `Cache-Control` (and every auth process) has it before the
    /// first token naming it arrives. At least [`JWKS_MAX_AGE_SECS`] + [`JWT_KEY_RELOAD_SECS`].
    pub activation_delay_secs: u64,
}

pub(super) fn validate_jwt(problems: &mut Vec<String>, jwt: &JwtConfig) {
    const TEN_YEARS: u64 = 315_360_000;
    for (name, value) in [
        ("expires_in_secs", Some(jwt.expires_in_secs)),
        ("grace_period_secs", Some(jwt.grace_period_secs)),
        ("activation_delay_secs", Some(jwt.activation_delay_secs)),
        ("rotation_interval_secs", jwt.rotation_interval_secs),
    ] {
        if value.is_some_and(|v| v > TEN_YEARS) {
            problems.push(format!("auth.jwt.{name} must be at most ten years"));
        }
    }
    if jwt.expires_in_secs < 10 {
        problems.push("auth.jwt.expires_in_secs must be at least 10".to_owned());
    }
    if jwt.grace_period_secs < jwt.expires_in_secs {
        problems.push(
            "auth.jwt.grace_period_secs must be at least auth.jwt.expires_in_secs, or tokens \
             outlive their key in the JWKS"
                .to_owned(),
        );
    }
    // A key is first served by the process that reloads soonest; another process may serve
    // the old document for one more reload interval, and a verifier may keep that for max-age.
    let min_delay = JWKS_MAX_AGE_SECS + JWT_KEY_RELOAD_SECS;
    if jwt.activation_delay_secs < min_delay {
        problems.push(format!(
            "auth.jwt.activation_delay_secs is {}; it must be at least {min_delay} (the JWKS \
             max-age of {JWKS_MAX_AGE_SECS} s plus the key reload interval of \
             {JWT_KEY_RELOAD_SECS} s), or verifiers meet tokens from keys they have not fetched",
            jwt.activation_delay_secs
        ));
    }
    if let Some(interval) = jwt.rotation_interval_secs
        && interval
            <= jwt
                .activation_delay_secs
                .saturating_add(JWT_KEY_RELOAD_SECS)
                .max(jwt.expires_in_secs)
    {
        problems.push(
            "auth.jwt.rotation_interval_secs must exceed both auth.jwt.activation_delay_secs \
             plus the key reload interval (30 s) and auth.jwt.expires_in_secs"
                .to_owned(),
        );
    }
    for (name, value) in [
        ("auth.jwt.issuer", &jwt.issuer),
        ("auth.jwt.audience", &jwt.audience),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(format!("{name} must not be empty when set"));
        }
    }
}
