//! Social sign-in (spec §8.3): the GitHub client, the OAuth state and linking rules, and the
//! key that seals provider tokens at rest. Handlers live in `handlers/social.rs`.

pub mod flow;
pub mod github;

use crate::auth::config::AuthConfig;
use crate::crypto::aead::Keyring;
use github::Github;

/// HKDF info naming what the token key is for; changing it makes stored tokens unreadable.
const TOKEN_KEY_PURPOSE: &str = "switchboard/auth/account-oauth-tokens/v1";

/// Everything the social handlers share.
pub struct Social {
    /// `None` when GitHub sign-in is not configured.
    pub github: Option<Github>,
    /// Seals `account.access_token` / `refresh_token` (Better Auth stores them in plaintext).
    pub vault: std::sync::Arc<Keyring>,
}

impl Social {
    pub fn new(auth: &AuthConfig, base_api_url: &str) -> anyhow::Result<Self> {
        let redirect_uri = format!("{base_api_url}/callback/github");
        Ok(Self {
            github: Github::from_config(&auth.github, &redirect_uri)?,
            vault: std::sync::Arc::new(Keyring::derive(
                auth.secret.expose().as_bytes(),
                TOKEN_KEY_PURPOSE,
            )),
        })
    }
}
