//! `switchboard keys rotate|revoke|list`: operator commands over the same `jwks` rows the auth
//! role serves. Running processes see a change at their next key reload (≤ 30 s); a rotated-in
//! key signs the activation delay after that first reload published it, unless `--now`.

use super::keys::{self, KeyPolicy};
use super::sealed::KeySealer;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::config::Config;
use anyhow::Context;
use diesel::Connection;
use std::fmt::Write;

/// What an operator asks of the signing keys (the CLI's `keys` commands map onto it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Add a key and retire the current one; `now`: sign with it at once.
    Rotate {
        now: bool,
    },
    /// Withdraw `kid`; `rotate`: put a new key in its place if it is the only signer.
    Revoke {
        kid: String,
        rotate: bool,
    },
    List,
}

/// Runs a signing-key action; returns what to print.
pub fn run(config: &Config, action: &KeyAction) -> anyhow::Result<String> {
    let mut conn = diesel::PgConnection::establish(config.database.url.expose())
        .context("connecting to the database")?;
    let policy = KeyPolicy::from_config(&config.auth.jwt);
    let sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret)?;
    let now = SystemClock.now();
    match action {
        KeyAction::Rotate { now: immediate } => {
            let rotated = keys::rotate(&mut conn, &sealer, &policy, now, *immediate)?;
            let when = if *immediate {
                format!(
                    "it signs now; the keys it replaced stay in the JWKS until {}",
                    (now + policy.reload + policy.token_lifetime).to_rfc3339()
                )
            } else {
                format!(
                    "running auth processes publish it within {} s and it signs {} s after \
                     that (by {} at the latest); retired keys stay in the JWKS for {} s after that",
                    policy.reload.num_seconds(),
                    policy.activation_delay.num_seconds(),
                    rotated.signs_from.to_rfc3339(),
                    policy.grace.num_seconds()
                )
            };
            Ok(format!(
                "new signing key {} ({}); {when}\n",
                rotated.kid,
                policy.alg.name(),
            ))
        }
        KeyAction::Revoke { kid, rotate } => {
            let revoked = keys::revoke(&mut conn, &sealer, &policy, now, kid, *rotate)?;
            let mut out = format!(
                "revoked key {}: withdrawn from the JWKS and from signing; running auth \
                 processes follow within {} s, verifiers at their next JWKS fetch\n",
                revoked.kid,
                policy.reload.num_seconds()
            );
            if let Some(new) = revoked.replacement {
                let _ = writeln!(out, "new signing key {new} signs in its place");
            }
            Ok(out)
        }
        KeyAction::List => {
            let rows = keys::list(&mut conn, &sealer, &policy, now)?;
            let mut out = format!(
                "{:<32}  {:<5}  {:<25}  {:<25}  STATE\n",
                "KID", "ALG", "CREATED", "EXPIRES"
            );
            for key in rows {
                let live = key.revoked_at.is_none() && key.expires_at.is_none_or(|e| e > now);
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if live && key.unreadable {
                    "unreadable (does not decrypt with JWT_SECRET; cannot sign)"
                } else if key.signing {
                    "signing"
                } else if live
                    && key
                        .published_at
                        .is_none_or(|p| p + policy.activation_delay > now)
                {
                    "pending"
                } else if live {
                    "standby"
                } else if key.published {
                    "retired (in JWKS)"
                } else {
                    "expired"
                };
                let _ = writeln!(
                    out,
                    "{:<32}  {:<5}  {:<25}  {:<25}  {state}",
                    key.kid,
                    key.alg,
                    key.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    key.expires_at
                        .map(|e| e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_else(|| "-".to_owned()),
                );
            }
            Ok(out)
        }
    }
}
