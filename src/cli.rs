//! The command line: `serve --role …`, `migrate`, `check-config --role …`,
//! `keys rotate|revoke|list|rotate-encryption`.

use crate::platform::role::Role;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Better Auth-compatible auth and connectors in one binary"
)]
pub struct Cli {
    /// What to do; with none, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chosen roles until SIGTERM or SIGINT.
    Serve(RoleArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and validate the configuration for the chosen roles, serve nothing.
    CheckConfig(RoleArgs),
    /// Manage keys: JWT signing keys (auth) and the token encryption key (connectors).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every stored OAuth token and PKCE verifier under the current ENCRYPTION_KEY
    /// (after moving the old key to `connectors.previous_encryption_keys`).
    #[cfg(feature = "connectors")]
    RotateEncryption {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
    /// Add a new signing key and retire the current one (it stays in the JWKS for the grace
    /// period). The new key is published by running auth processes at their next key reload
    /// (<= 30 s) and signs `auth.jwt.activation_delay_secs` after that, once caches have it.
    #[cfg(feature = "auth")]
    Rotate {
        /// Sign with the new key at once; the old ones stay in the JWKS only as long as tokens
        /// they signed live. Verifiers that cached the JWKS refetch it on the unknown kid. For
        /// a leaked key use `keys revoke`.
        #[arg(long)]
        now: bool,
    },
    /// Withdraw a key from the JWKS and from signing at once (running processes follow at their
    /// next key reload, <= 30 s; verifiers at their next fetch): tokens it signed stop
    /// verifying. Refused for the only key that can sign, unless --rotate.
    #[cfg(feature = "auth")]
    Revoke {
        /// The key id (`kid`), as `keys list` shows it.
        kid: String,
        /// When it is the only key that can sign: put a new key in its place, signing at once.
        #[arg(long)]
        rotate: bool,
    },
    /// Every key: kid, alg, created, expires, state. Never a private key.
    #[cfg(feature = "auth")]
    List,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RoleArgs {
    /// Which role(s) to run; `all` runs both, each on its own listener.
    #[arg(long, env = "SWITCHBOARD_ROLE", value_enum, default_value_t = RoleArg::default())]
    pub role: RoleArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Auth,
    Connectors,
    All,
}

impl Default for RoleArg {
    /// `all` in a full build; the one role a single-role build contains otherwise.
    fn default() -> Self {
        match (cfg!(feature = "auth"), cfg!(feature = "connectors")) {
            (true, false) => Self::Auth,
            (false, true) => Self::Connectors,
            _ => Self::All,
        }
    }
}

impl RoleArg {
    /// The roles to run, or why this binary cannot run them.
    pub fn roles(self) -> Result<Vec<Role>, String> {
        let wanted = match self {
            Self::Auth => vec![Role::Auth],
            Self::Connectors => vec![Role::Connectors],
            Self::All => vec![Role::Auth, Role::Connectors],
        };
        let missing: Vec<_> = wanted.iter().filter(|r| !r.compiled_in()).collect();
        if let Some(role) = missing.first() {
            return Err(format!(
                "role `{role}` is not compiled into this binary (it was built without the `{role}` feature); \
                 rebuild with `--features {role}` or choose another --role"
            ));
        }
        Ok(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_means_both_roles_in_a_full_build() {
        if cfg!(all(feature = "auth", feature = "connectors")) {
            assert_eq!(RoleArg::All.roles(), Ok(vec![Role::Auth, Role::Connectors]));
        } else {
            assert!(RoleArg::All.roles().is_err());
        }
    }

    #[test]
    fn a_missing_role_is_refused_with_its_feature_named() {
        #[cfg(not(feature = "auth"))]
        {
            let err = RoleArg::Auth.roles().unwrap_err();
            assert!(err.contains("`auth` feature"), "{err}");
        }
        #[cfg(feature = "auth")]
        assert_eq!(RoleArg::Auth.roles(), Ok(vec![Role::Auth]));
    }
}
