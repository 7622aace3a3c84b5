//! THE ONE PLACE a token is read before its signature is checked. Nothing here may be trusted:
//! it only says which key and algorithm to try. Everything else waits for the verifier.

use crate::trust::TrustError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// Larger tokens are refused before any decoding (ours are well under 2 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A compact JWS split into its parts, header decoded but NOT verified.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    /// `base64url(header) . base64url(payload)`: what the signature covers.
    pub signing_input: &'a str,
    pub payload_b64: &'a str,
    pub signature_b64: &'a str,
    pub header: UnverifiedHeader,
}

#[derive(Debug, Deserialize)]
pub struct UnverifiedHeader {
    pub alg: String,
    pub kid: Option<String>,
    /// Extensions the signer says we must understand; we understand none.
    crit: Option<serde_json::Value>,
}

pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, TrustError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TrustError::Invalid("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TrustError::Invalid("not a compact JWS"));
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TrustError::Invalid("malformed header"))?;
    let header: UnverifiedHeader = serde_json::from_slice(&header_json)
        .map_err(|_| TrustError::Invalid("malformed header"))?;
    if header.crit.is_some() {
        return Err(TrustError::Invalid("unsupported critical header"));
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(UnverifiedToken {
        signing_input,
        payload_b64,
        signature_b64,
        header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_reads_the_header() {
        let token = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.c2ln";
        let parsed = parse(token).unwrap();
        assert_eq!(parsed.header.alg, "EdDSA");
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert_eq!(
            parsed.signing_input,
            "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30"
        );
        assert_eq!(parsed.signature_b64, "c2ln");
    }

    #[test]
    fn refuses_what_is_not_a_compact_jws() {
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.c2ln", "e30.e30.c2ln"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// A well-formed token padded (in its signature part) to exactly `len` bytes.
    fn token_of_len(len: usize) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","kid":"k"}"#);
        let prefix = format!("{header}.e30.");
        format!("{prefix}{}", "A".repeat(len - prefix.len()))
    }

    #[test]
    fn the_size_limit_is_8_kib_exactly() {
        assert_eq!(MAX_TOKEN_LEN, 8192);
        assert!(parse(&token_of_len(MAX_TOKEN_LEN)).is_ok());
        assert!(matches!(
            parse(&token_of_len(MAX_TOKEN_LEN + 1)),
            Err(TrustError::Invalid("token too large"))
        ));
        // Between the real limit and a mistyped one (8 + 1024): still a token.
        assert!(parse(&token_of_len(2048)).is_ok());
    }
}
