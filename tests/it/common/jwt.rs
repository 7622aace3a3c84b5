//! Tokens the connectors role accepts: an Ed25519 key whose JWKS a local stand-in serves at the
//! `AUTH_JWKS_URL` the test app is given, and a minter signing with it (iss/aud as the test
//! config expects: the `BETTER_AUTH_URL` origin).

use chrono::{DateTime, Utc};
use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{EdDSA, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const ISSUER: &str = "http://localhost:5001";

pub struct Minter {
    pub server: MockServer,
    private: josekit::jwk::Jwk,
    kid: String,
}

impl Minter {
    pub async fn start() -> Self {
        let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
        let kid = "test-kid-1".to_owned();
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(&kid);
        public.set_algorithm("EdDSA");
        public.set_key_use("sig");
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/auth/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": [public] })))
            .mount(&server)
            .await;
        Self {
            server,
            private: pair.to_jwk_private_key(),
            kid,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/api/auth/jwks", self.server.uri())
    }

    /// A token for `sub`, valid for an hour from `now` (the test app's clock).
    pub fn token(&self, sub: &str, now: DateTime<Utc>) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        let mut payload = JwtPayload::new();
        payload.set_subject(sub);
        payload.set_issuer(ISSUER);
        payload.set_audience(vec![ISSUER]);
        let at = |t: DateTime<Utc>| UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64);
        payload.set_issued_at(&at(now));
        payload.set_expires_at(&at(now + chrono::Duration::hours(1)));
        payload
            .set_claim("email", Some(json!(format!("{sub}@example.com"))))
            .unwrap();
        let signer = EdDSA.signer_from_jwk(&self.private).unwrap();
        let _ = SystemTime::now();
        jwt::encode_with_signer(&payload, &header, &signer).unwrap()
    }
}
