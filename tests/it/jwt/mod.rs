//! The auth role's JWT plugin: signing keys in `jwks`, Better Auth's rows and tokens (the spec's
//! real test vectors), the JWKS at both paths, rotation by command and by interval.
//! Split by flow: here the JWKS and the tokens; `rotation` (rotation, publication delay,
//! revocation, across processes); `startup` (the `keys` commands and what `serve` and the
//! configuration refuse).

mod rotation;
mod startup;

use crate::common::TestApp;
use actix_web::http::header;
use actix_web::test::TestRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::auth::jwt::KeyStore;
use switchboard::auth::jwt::keys::{self, KeyPolicy};
use switchboard::auth::jwt::sealed::KeySealer;
use switchboard::db::schema::jwks;
use switchboard::platform::clock::{Clock, ManualClock};
use switchboard::platform::role::Role;
use switchboard::trust::{KeySet, StaticKeySource, Verifier};

// spec/better-auth-compat.md §8.4: real values from a Better Auth 1.7.25 server.
pub const BA_SECRET: &str = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const BA_URL: &str = "http://127.0.0.1:3111";
pub const BA_KID: &str = "IdQ54hUv48Z8XrULqgArTYpV4uHxr4r2";
pub const BA_JWKS: &str = r#"{"keys":[{"alg":"EdDSA","crv":"Ed25519","x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s","kty":"OKP","kid":"IdQ54hUv48Z8XrULqgArTYpV4uHxr4r2"}]}"#;
pub const BA_PUBLIC_KEY: &str =
    r#"{"crv":"Ed25519","x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s","kty":"OKP"}"#;
pub const BA_PRIVATE_KEY: &str = "\"9bcc22f0e8e6bcfca7e63f2c64c839c811ef7f1567ace4f2fb8fdb21268a0cc0b1106e105072a14852444fb984595b72811557fe32925917cdb53c5cb9e99311e056e4cbd70509b6586708aa1aab4fb05e021fe908af2bea2ba3983a138a0711939d3c5d6751310d80f68ef47fb1bdef7b1e9d58e605bd3db402ec9ce3fb6ba06855ce191ab84df3716092acfec9b8b64b9af1a1667eedfd5785177e789996c1b027ebe1e9335a0c4f\"";
pub const BA_JWT: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6IklkUTU0aFV2NDhaOFhyVUxxZ0FyVFlwVjR1SHhyNHIyIn0.eyJpYXQiOjE3OTU2MjQ2MTcsIm5hbWUiOiJBbGljZSIsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJlbWFpbFZlcmlmaWVkIjpmYWxzZSwiaW1hZ2UiOm51bGwsImNyZWF0ZWRBdCI6IjIwMjYtMTEtMjVUMTY6MzY6NTIuMjk1WiIsInVwZGF0ZWRBdCI6IjIwMjYtMTEtMjVUMTY6MzY6NTIuMjk1WiIsImlkIjoiN0x5eDNYc1NTMXk4NDZuZDk3UmlPTWhlWG56MTd1VEgiLCJzdWIiOiI3THl4M1hzU1MxeTg0Nm5kOTdSaU9NaGVYbnoxN3VUSCIsImV4cCI6MTc5NTYyNTUxNywiaXNzIjoiaHR0cDovLzEyNy4wLjAuMTozMTExIiwiYXVkIjoiaHR0cDovLzEyNy4wLjAuMTozMTExIn0.QjDeKFykk9xUf08WlPoZNQ-hpW-1g4OpbV1LrVNAY7UNtJJIUnT7YEaIXfvC14nGoOR7X5zqSULQYSblCW3uCg";
pub const BA_JWT_IAT: i64 = 1795624617;

/// The user object as get-session returns it.
pub fn alice() -> Value {
    json!({
        "id": "7Lyx3XsSS1y846nd97RiOMheXnz17uTH",
        "name": "Alice",
        "email": "alice@example.com",
        "emailVerified": false,
        "image": null,
        "createdAt": "2026-11-25T16:36:52.295Z",
        "updatedAt": "2026-11-25T16:36:52.295Z"
    })
}

pub fn verifier_for(jwks: &[u8], iss: &str, clock: Arc<ManualClock>) -> Verifier {
    let set = KeySet::from_jwks(jwks).unwrap();
    Verifier::new(Arc::new(StaticKeySource(set)), iss, iss, clock)
}

pub fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn rows(app: &TestApp) -> Vec<keys::JwkRow> {
    jwks::table
        .order(jwks::created_at.asc())
        .select(keys::JwkRow::as_select())
        .load(&mut app.db.conn())
        .unwrap()
}

fn insert_better_auth_row(app: &TestApp, created_at: DateTime<Utc>) {
    diesel::insert_into(jwks::table)
        .values((
            jwks::id.eq(BA_KID),
            jwks::public_key.eq(BA_PUBLIC_KEY),
            jwks::private_key.eq(BA_PRIVATE_KEY),
            jwks::created_at.eq(created_at),
            jwks::alg.eq(Some("EdDSA")),
            jwks::crv.eq(Some("Ed25519")),
        ))
        .execute(&mut app.db.conn())
        .unwrap();
}

#[actix_web::test]
async fn the_jwks_is_the_same_cacheable_public_document_at_both_paths() {
    let mut app = TestApp::with_env(&[("CORS_ORIGINS", "https://app.example.com")]);
    assert!(rows(&app).is_empty());
    let get = |path: &'static str, origin: &'static str| {
        TestRequest::get()
            .uri(path)
            .insert_header((header::ORIGIN, origin))
    };
    let a = app
        .call(
            Role::Auth,
            get("/api/auth/jwks", "https://elsewhere.example"),
        )
        .await;
    let b = app
        .call(
            Role::Auth,
            get("/.well-known/jwks.json", "https://app.example.com"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 200);
    assert_eq!(a.body, b.body, "one document at both paths");
    for res in [&a, &b] {
        assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
        assert!(
            res.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
    // Readable from any origin; a configured origin gets the CORS middleware's exact answer.
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        b.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    // The first use generated one Ed25519 key, like Better Auth, sealed under JWT_SECRET.
    let stored = rows(&app);
    assert_eq!(stored.len(), 1);
    let row = &stored[0];
    assert_eq!(row.id.len(), 32);
    assert!(row.id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(row.alg.as_deref(), Some("EdDSA"));
    assert_eq!(row.crv.as_deref(), Some("Ed25519"));
    assert_eq!(row.expires_at, None);
    assert!(row.private_key.starts_with("\"v1:"), "{}", row.private_key);
    assert!(!row.private_key.contains("\"d\""));
    let public: Value = serde_json::from_str(&row.public_key).unwrap();
    assert_eq!(
        public.as_object().unwrap().len(),
        3,
        "crv, x, kty only: {public}"
    );

    let doc = a.json();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], row.id.as_str());
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["x"], public["x"]);
    assert!(keys[0].get("d").is_none(), "never the private part");

    // A second request neither generates nor changes anything.
    let again = app.get(Role::Auth, "/api/auth/jwks").await;
    assert_eq!(again.body, a.body);
    assert_eq!(rows(&app).len(), 1);
}

#[actix_web::test]
async fn both_jwks_paths_are_in_the_auth_openapi_document() {
    let mut app = TestApp::new();
    let doc = app.get(Role::Auth, "/openapi.json").await.json();
    assert!(doc["paths"]["/api/auth/jwks"]["get"].is_object(), "{doc}");
    assert!(doc["paths"]["/.well-known/jwks.json"]["get"].is_object());
}

#[actix_web::test]
async fn the_spec_jwt_verifies_against_the_spec_jwks() {
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(BA_JWT_IAT + 60, 0).unwrap(),
    ));
    let verifier = verifier_for(BA_JWKS.as_bytes(), BA_URL, clock.clone());
    let claims = verifier.verify(BA_JWT).await.unwrap();
    assert_eq!(claims.sub, "7Lyx3XsSS1y846nd97RiOMheXnz17uTH");
    assert_eq!(claims.str("email"), Some("alice@example.com"));
    // And not after it expired (exp = iat + 900, 30 s leeway).
    clock.advance(Duration::seconds(900 + 31 - 60));
    assert!(verifier.verify(BA_JWT).await.is_err());
}

#[actix_web::test]
async fn a_row_better_auth_wrote_is_published_unchanged_and_still_signs() {
    let mut app = TestApp::with_env(&[
        ("BETTER_AUTH_SECRET", BA_SECRET),
        ("BETTER_AUTH_URL", BA_URL),
    ]);
    insert_better_auth_row(&app, app.clock.now() - Duration::days(1));

    let res = app.get(Role::Auth, "/api/auth/jwks").await;
    assert_eq!(res.status, 200);
    let expected: Value = serde_json::from_str(BA_JWKS).unwrap();
    assert_eq!(res.json(), expected);
    assert_eq!(
        rows(&app).len(),
        1,
        "a usable Better Auth key means no new key"
    );

    let store = KeyStore::new(&app.platform).unwrap();
    let now = app.clock.now();
    let token = store.sign_for_user(&alice(), now).await.unwrap();
    assert_eq!(
        decode_part(&token, 0),
        json!({"alg": "EdDSA", "kid": BA_KID})
    );
    // Verifies with the JWKS Better Auth itself published.
    let verifier = verifier_for(BA_JWKS.as_bytes(), BA_URL, app.clock.clone());
    assert_eq!(
        verifier.verify(&token).await.unwrap().sub,
        "7Lyx3XsSS1y846nd97RiOMheXnz17uTH"
    );
    // The row was left as Better Auth wrote it (it stays readable by Better Auth too).
    assert_eq!(rows(&app)[0].private_key, BA_PRIVATE_KEY);
}

#[actix_web::test]
async fn tokens_carry_better_auth_claims_in_its_order() {
    let mut app = TestApp::with_env(&[("BETTER_AUTH_URL", "http://localhost:5001/some/path")]);
    let store = KeyStore::new(&app.platform).unwrap();
    let now = app.clock.now();
    let token = store.sign_for_user(&alice(), now).await.unwrap();

    let header = decode_part(&token, 0);
    assert_eq!(
        header.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["alg", "kid"]
    );
    let payload = decode_part(&token, 1);
    let names: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "iat",
            "id",
            "name",
            "email",
            "emailVerified",
            "image",
            "createdAt",
            "updatedAt",
            "sub",
            "exp",
            "iss",
            "aud"
        ]
    );
    let iat = now.timestamp();
    assert_eq!(payload["iat"], iat);
    assert_eq!(payload["exp"], iat + 900);
    assert_eq!(payload["sub"], "7Lyx3XsSS1y846nd97RiOMheXnz17uTH");
    assert_eq!(
        payload["iss"], "http://localhost:5001",
        "the origin, without the path"
    );
    assert_eq!(payload["aud"], "http://localhost:5001");
    assert_eq!(payload["image"], Value::Null);

    let jwks = app.get(Role::Auth, "/api/auth/jwks").await;
    let verifier = verifier_for(&jwks.body, "http://localhost:5001", app.clock.clone());
    verifier.verify(&token).await.unwrap();

    // A user object without an id cannot become a token.
    assert!(
        store
            .sign_for_user(&json!({"name": "x"}), now)
            .await
            .is_err()
    );
}

#[actix_web::test]
async fn issuer_audience_and_lifetime_are_configurable() {
    let app = TestApp::with_env(&[
        ("SWITCHBOARD__AUTH__JWT__ISSUER", "https://issuer.example"),
        ("SWITCHBOARD__AUTH__JWT__AUDIENCE", "https://api.example"),
        ("SWITCHBOARD__AUTH__JWT__EXPIRES_IN_SECS", "60"),
    ]);
    let store = KeyStore::new(&app.platform).unwrap();
    let now = app.clock.now();
    let payload = decode_part(&store.sign_for_user(&alice(), now).await.unwrap(), 1);
    assert_eq!(payload["iss"], "https://issuer.example");
    assert_eq!(payload["aud"], "https://api.example");
    assert_eq!(payload["exp"], now.timestamp() + 60);
}

#[actix_web::test]
async fn every_configured_algorithm_signs_tokens_its_jwks_verifies() {
    for (alg, jose, crv) in [
        ("es256", "ES256", Some("P-256")),
        ("rs256", "RS256", None),
        ("ps256", "PS256", None),
    ] {
        let mut app = TestApp::with_env(&[("SWITCHBOARD__AUTH__JWT__ALG", alg)]);
        let store = KeyStore::new(&app.platform).unwrap();
        let token = store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap();
        assert_eq!(decode_part(&token, 0)["alg"], jose);
        let jwks = app.get(Role::Auth, "/.well-known/jwks.json").await;
        let entry = &jwks.json()["keys"][0];
        assert_eq!(entry["alg"], jose);
        assert_eq!(entry["crv"].as_str(), crv, "{entry}");
        assert!(
            entry.get("d").is_none() && entry.get("p").is_none(),
            "{entry}"
        );
        let verifier = verifier_for(&jwks.body, "http://localhost:5001", app.clock.clone());
        verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

async fn store_kids(store: &KeyStore) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&store.jwks_document().await.unwrap()).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn sealer(app: &TestApp) -> KeySealer {
    let config = &app.platform.config;
    KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap()
}

fn policy(app: &TestApp) -> KeyPolicy {
    KeyPolicy::from_config(&app.platform.config.auth.jwt)
}

fn kid_of(token: &str) -> String {
    decode_part(token, 0)["kid"].as_str().unwrap().to_owned()
}
