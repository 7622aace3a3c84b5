//! The JWT signature algorithms switchboard signs and accepts, named once: the auth role's
//! configuration (`auth.jwt.alg`), its signing keys, and the trust layer's verifiers all speak
//! [`Algorithm`]. `none` and the HMAC family are absent on purpose: a public key must never be
//! usable as a shared secret.

use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier, PS256, RS256};
use serde::Deserialize;

/// An asymmetric JWS algorithm. In configuration it is spelled in lower case (`eddsa`, `es256`,
/// `rs256`, `ps256`); on the wire by its JOSE name ([`Algorithm::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    EdDsa,
    Es256,
    Rs256,
    Ps256,
}

impl Algorithm {
    /// The algorithm a JOSE `alg` name denotes, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            _ => None,
        }
    }

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    /// A signer over a private JWK.
    pub fn signer(self, jwk: &Jwk) -> Result<Box<dyn JwsSigner>, josekit::JoseError> {
        Ok(match self {
            Self::EdDsa => Box::new(EdDSA.signer_from_jwk(jwk)?),
            Self::Es256 => Box::new(ES256.signer_from_jwk(jwk)?),
            Self::Rs256 => Box::new(RS256.signer_from_jwk(jwk)?),
            Self::Ps256 => Box::new(PS256.signer_from_jwk(jwk)?),
        })
    }

    /// A verifier over a public JWK.
    pub fn verifier(self, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, josekit::JoseError> {
        Ok(match self {
            Self::EdDsa => Box::new(EdDSA.verifier_from_jwk(jwk)?),
            Self::Es256 => Box::new(ES256.verifier_from_jwk(jwk)?),
            Self::Rs256 => Box::new(RS256.verifier_from_jwk(jwk)?),
            Self::Ps256 => Box::new(PS256.verifier_from_jwk(jwk)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Algorithm;

    #[test]
    fn names_round_trip_and_config_spelling_is_lower_case() {
        for alg in [
            Algorithm::EdDsa,
            Algorithm::Es256,
            Algorithm::Rs256,
            Algorithm::Ps256,
        ] {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
            let lower: Algorithm =
                serde_json::from_value(serde_json::json!(alg.name().to_lowercase())).unwrap();
            assert_eq!(lower, alg);
        }
        assert_eq!(Algorithm::EdDsa.name(), "EdDSA");
        assert_eq!(Algorithm::Es256.name(), "ES256");
        assert_eq!(Algorithm::Rs256.name(), "RS256");
        assert_eq!(Algorithm::Ps256.name(), "PS256");
        // A JWS header's `alg` is case-sensitive, and nothing outside the four is one.
        for name in ["HS256", "none", "eddsa", "", "ES384"] {
            assert_eq!(Algorithm::from_name(name), None, "{name:?}");
        }
    }
}
