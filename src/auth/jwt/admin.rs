//! `switchboard keys rotate|list`: operator commands over the same `jwks` rows the auth role
//! serves. A rotation is seen by running processes at their next refresh (≤ 30 s), and signs
//! only after its activation delay unless `--now`.

use super::keys::{self, KeyPolicy};
use super::sealed::KeySealer;
use crate::cli::KeysCommand;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::config::Config;
use anyhow::Context;
use diesel::Connection;
use std::fmt::Write;

/// Runs a `keys` command; returns what to print.
pub fn run(config: &Config, command: &KeysCommand) -> anyhow::Result<String> {
    let mut conn = diesel::PgConnection::establish(config.database.url.expose())
        .context("connecting to the database")?;
    let policy = KeyPolicy::from_config(&config.auth.jwt);
    let now = SystemClock.now();
    match command {
        KeysCommand::Rotate { now: immediate } => {
            let sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret)?;
            let rotated = keys::rotate(&mut conn, &sealer, &policy, now, *immediate)?;
            Ok(format!(
                "new signing key {} ({}); it signs from {}; retired keys stay in the JWKS for {} s after that\n",
                rotated.kid,
                policy.alg.jose_name(),
                rotated.signs_from.to_rfc3339(),
                policy.grace.num_seconds()
            ))
        }
        // Not a signing-key command; `main` hands it to the connectors role.
        #[cfg(feature = "connectors")]
        KeysCommand::RotateEncryption { .. } => {
            anyhow::bail!("rotate-encryption is a connectors command")
        }
        KeysCommand::List => {
            let rows = keys::list(&mut conn, &policy, now)?;
            let mut out = format!(
                "{:<32}  {:<5}  {:<25}  {:<25}  STATE\n",
                "KID", "ALG", "CREATED", "EXPIRES"
            );
            for key in rows {
                let live = key.expires_at.is_none_or(|e| e > now);
                let state = if key.signing {
                    "signing"
                } else if live && key.created_at + policy.activation_delay > now {
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
