//! Bench helper (not shipped): makes an Ed25519 key, writes its JWKS to `$1` and prints a JWT
//! for subject `$2` that the connectors role accepts when `AUTH_JWKS_URL` serves that file.
//! Used by bench/connections.sh on a base without the auth role's sign-up endpoints.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench helper: a failure should stop it with the reason"
)]

use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{EdDSA, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use std::time::{Duration, SystemTime};

fn main() {
    let mut args = std::env::args().skip(1);
    let jwks_path = args
        .next()
        .expect("usage: bench_token <jwks-file> <sub> [issuer]");
    let sub = args
        .next()
        .expect("usage: bench_token <jwks-file> <sub> [issuer]");
    let issuer = args
        .next()
        .unwrap_or_else(|| "http://localhost:5001".to_owned());
    let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("bench");
    public.set_algorithm("EdDSA");
    public.set_key_use("sig");
    let jwks = serde_json::json!({ "keys": [public] });
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();

    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id("bench");
    let mut payload = JwtPayload::new();
    payload.set_subject(&sub);
    payload.set_issuer(&issuer);
    payload.set_audience(vec![issuer.as_str()]);
    // Whole seconds: NumericDate with a fraction is not an integer claim.
    let secs = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    payload.set_issued_at(&now);
    payload.set_expires_at(&(now + Duration::from_secs(3 * 3600)));
    let signer = EdDSA.signer_from_jwk(&pair.to_jwk_private_key()).unwrap();
    println!(
        "{}",
        jwt::encode_with_signer(&payload, &header, &signer).unwrap()
    );
}
