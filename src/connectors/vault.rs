//! The token vault: OAuth tokens and PKCE verifiers sealed with the versioned AES-256-GCM
//! envelope under `ENCRYPTION_KEY`, each bound (AAD) to its row and column so sealed values
//! cannot be swapped between rows or fields. Plaintext exists only in memory, in [`Plain`].

use crate::crypto::aead::{AeadError, Keyring};
use crate::platform::config::Config;
use std::fmt;

/// A plaintext token or verifier. `Debug`/`Display` print a placeholder, so it cannot reach a
/// log or an error by accident; read it with [`Plain::expose`] where it is really sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain(String);

impl Plain {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plain([redacted])")
    }
}

/// Which column a sealed value lives in; part of its AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    AccessToken,
    RefreshToken,
    CodeVerifier,
    /// A pending grant's payload (tokens and the account they name), bound to its code hash.
    PendingGrant,
    /// A credential an MCP server accepts (a user-given bearer, or an OAuth access token).
    McpAccessToken,
    /// The refresh token of an MCP server's OAuth credential.
    McpRefreshToken,
    /// The PKCE verifier of an MCP authorization in progress.
    McpCodeVerifier,
    /// Our client secret at an MCP authorization server (dynamic registration).
    McpClientSecret,
}

impl Field {
    /// Every sealed column. `switchboard keys rotate-encryption` re-seals each of them; a test
    /// there fails when a variant is missing here.
    pub const ALL: [Self; 8] = [
        Self::AccessToken,
        Self::RefreshToken,
        Self::CodeVerifier,
        Self::PendingGrant,
        Self::McpAccessToken,
        Self::McpRefreshToken,
        Self::McpCodeVerifier,
        Self::McpClientSecret,
    ];

    /// The table and column the value lives in.
    pub fn location(self) -> (&'static str, &'static str) {
        match self {
            Self::AccessToken => ("connections", "access_token"),
            Self::RefreshToken => ("connections", "refresh_token"),
            Self::CodeVerifier => ("oauth_flows", "code_verifier"),
            Self::PendingGrant => ("pending_grants", "payload"),
            Self::McpAccessToken => ("mcp_credentials", "access_token"),
            Self::McpRefreshToken => ("mcp_credentials", "refresh_token"),
            Self::McpCodeVerifier => ("mcp_auth_flows", "code_verifier"),
            Self::McpClientSecret => ("mcp_oauth_clients", "client_secret"),
        }
    }

    fn aad(self, row: &str) -> Vec<u8> {
        let (table, column) = self.location();
        format!("switchboard/{table}/{row}/{column}").into_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the encryption keys are not usable: {0}")]
    Keys(String),
    #[error("a stored secret does not open: {0}")]
    Open(AeadError),
    #[error("sealing failed: {0}")]
    Seal(AeadError),
}

#[derive(Debug)]
pub struct Vault {
    keyring: Keyring,
}

impl Vault {
    /// The keyring from `connectors.encryption_key` (+ version) and its previous keys.
    pub fn from_config(config: &Config) -> Result<Self, VaultError> {
        let c = &config.connectors;
        let older = config
            .previous_encryption_keys()
            .map_err(|problems| VaultError::Keys(problems.join("; ")))?;
        let keyring = Keyring::new(
            c.encryption_key_version,
            c.encryption_key.expose().as_bytes(),
            &older,
        )
        .map_err(|e| VaultError::Keys(e.to_string()))?;
        Ok(Self { keyring })
    }

    pub fn seal(&self, field: Field, row: &str, value: &Plain) -> Result<String, VaultError> {
        self.keyring
            .seal(value.expose().as_bytes(), &field.aad(row))
            .map_err(VaultError::Seal)
    }

    pub fn open(&self, field: Field, row: &str, sealed: &str) -> Result<Plain, VaultError> {
        let bytes = self
            .keyring
            .open(sealed, &field.aad(row))
            .map_err(VaultError::Open)?;
        String::from_utf8(bytes)
            .map(Plain)
            .map_err(|_| VaultError::Open(AeadError::Invalid))
    }

    /// Opens under whichever key sealed it and seals again under the current key.
    pub fn reseal(&self, field: Field, row: &str, sealed: &str) -> Result<String, VaultError> {
        let plain = self.open(field, row, sealed)?;
        self.seal(field, row, &plain)
    }

    pub fn needs_rotation(&self, sealed: &str) -> bool {
        self.keyring.needs_rotation(sealed)
    }
}
