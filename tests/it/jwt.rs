//! The auth role's JWT plugin: signing keys in `jwks`, Better Auth's rows and tokens (the spec's
//! real test vectors), the JWKS at both paths, rotation by command and by interval.

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

#[actix_web::test]
async fn rotation_publishes_first_then_signs_and_keeps_retired_keys_for_the_grace_period() {
    let mut app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let t0 = app.clock.now();
    let first = store.sign_for_user(&alice(), t0).await.unwrap();
    let old_kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();

    // In-process rotation: published at once, but the new key waits out the activation delay
    // (360 s) counted from then.
    app.clock.advance(Duration::seconds(10));
    let rotated = store.rotate(false).await.unwrap();
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.published_at, Some(t0 + Duration::seconds(10)));
    assert_eq!(rotated.signs_from, t0 + Duration::seconds(370));
    let jwks = app.get(Role::Auth, "/api/auth/jwks").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&rotated.kid.as_str()),
        "{kids:?}"
    );
    let during = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&during, 0)["kid"], old_kid.as_str());

    app.clock.advance(Duration::seconds(361));
    let after = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&after, 0)["kid"], rotated.kid.as_str());

    // The retired key stays published for 30 days after it stopped signing, then goes.
    app.clock.advance(Duration::days(29));
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await.len(), 2);
    app.clock.advance(Duration::days(2));
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await, vec![rotated.kid.clone()]);
    assert_eq!(
        rows(&app).len(),
        2,
        "rows are kept; only the JWKS drops them"
    );
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

#[actix_web::test]
async fn another_process_rotation_is_seen_after_the_refresh_interval_without_a_restart() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let first = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    let old_kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();

    // What `switchboard keys rotate --now` does, from "another process".
    app.clock.advance(Duration::seconds(10));
    let config = &app.platform.config;
    let sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap();
    let policy = KeyPolicy::from_config(&config.auth.jwt);
    let rotated_at = app.clock.now();
    let rotated = keys::rotate(&mut app.db.conn(), &sealer, &policy, rotated_at, true).unwrap();

    // Until its next refresh the store signs with the key it has (still in the JWKS)…
    let before = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&before, 0)["kid"], old_kid.as_str());
    // …and from the refresh on, with the new one.
    app.clock.advance(Duration::seconds(31));
    let next = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&next, 0)["kid"], rotated.kid.as_str());
    assert_ne!(rotated.kid, old_kid);

    // `--now` keeps the old key in the JWKS only while a token it signed can still verify
    // (reload 30 s + lifetime 900 s + leeway 30 s), not for the 30-day grace period.
    let withdrawn = rotated_at + Duration::seconds(30 + 900 + 30);
    app.clock.set(withdrawn - Duration::seconds(1));
    store.reload(app.clock.now()).await.unwrap();
    assert!(store_kids(&store).await.contains(&old_kid));
    app.clock.set(withdrawn);
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await, vec![rotated.kid.clone()]);
}

#[actix_web::test]
async fn the_automatic_interval_rotates_once_however_many_processes_check() {
    let app = TestApp::with_env(&[("SWITCHBOARD__AUTH__JWT__ROTATION_INTERVAL_SECS", "86400")]);
    let a = KeyStore::new(&app.platform).unwrap();
    let b = KeyStore::new(&app.platform).unwrap();
    let first = a.sign_for_user(&alice(), app.clock.now()).await.unwrap();
    let kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();
    let row = &rows(&app)[0];
    assert_eq!(
        row.expires_at,
        Some(row.created_at + Duration::days(1)),
        "Better Auth's expiresAt"
    );

    assert!(a.rotate_if_due().await.unwrap().is_none(), "not due yet");
    // Due early by the reload interval and the activation delay (30 + 360 s), so the successor
    // is published and signs before the key expires.
    app.clock.advance(Duration::seconds(86400 - 391));
    assert!(a.rotate_if_due().await.unwrap().is_none(), "not due yet");
    app.clock.advance(Duration::seconds(1));
    let (ra, rb) = futures_util::join!(a.rotate_if_due(), b.rotate_if_due());
    let made: Vec<_> = [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
    assert_eq!(made.len(), 1, "exactly one process rotated");
    assert_eq!(rows(&app).len(), 2);
    let during = a.sign_for_user(&alice(), app.clock.now()).await.unwrap();
    assert_eq!(decode_part(&during, 0)["kid"], kid.as_str());
    app.clock.advance(Duration::seconds(360));
    let after = b.sign_for_user(&alice(), app.clock.now()).await.unwrap();
    assert_eq!(decode_part(&after, 0)["kid"], made[0].kid.as_str());
}

#[actix_web::test]
async fn the_key_list_names_the_signing_key_and_never_a_private_key() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    app.clock.advance(Duration::seconds(10));
    let rotated = store.rotate(true).await.unwrap();
    let policy = KeyPolicy::from_config(&app.platform.config.auth.jwt);
    let list = keys::list(
        &mut app.db.conn(),
        &sealer(&app),
        &policy,
        app.clock.now() + Duration::seconds(1),
    )
    .unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0].signing && list[0].kid == rotated.kid);
    assert!(!list[1].signing && list[1].published);
}

#[test]
fn the_keys_commands_rotate_and_list_without_showing_a_private_key() {
    let db = crate::common::TestDb::new();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("APP_ENV", "test")
            .env("DATABASE_URL", db.url())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let rotated = run(&["keys", "rotate", "--now"]);
    assert!(rotated.starts_with("new signing key "), "{rotated}");
    let kid = rotated.split_whitespace().nth(3).unwrap().to_owned();
    let again = run(&["keys", "rotate"]);
    let listed = run(&["keys", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("KID"), "{listed}");
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[2].starts_with(&kid) && lines[2].ends_with("signing"),
        "{listed}"
    );
    assert!(lines[1].ends_with("pending"), "{listed}");
    assert!(again.contains("signs 360 s after that"), "{again}");
    assert!(!listed.contains("\"v1:") && !listed.contains("\"d\""));

    // `keys revoke`: the pending key takes over; the last one goes only with --rotate.
    let pending = lines[1].split_whitespace().next().unwrap().to_owned();
    let revoked = run(&["keys", "revoke", &kid]);
    assert!(
        revoked.starts_with(&format!("revoked key {kid}")),
        "{revoked}"
    );
    let listed = run(&["keys", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&kid) && l.ends_with("revoked")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&pending) && l.ends_with("signing")),
        "{listed}"
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("DATABASE_URL", db.url())
        .args(["keys", "revoke", &pending])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("only key that can sign"), "{stderr}");
    let replaced = run(&["keys", "revoke", &pending, "--rotate"]);
    assert!(replaced.contains("new signing key"), "{replaced}");
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

/// Finding 13: the activation delay counts from when a process first served the key in its
/// JWKS, not from the row's creation, and every process switches at that same moment.
#[actix_web::test]
async fn a_rotated_key_signs_the_activation_delay_after_it_was_first_published() {
    let app = TestApp::new();
    let a = KeyStore::new(&app.platform).unwrap();
    let b = KeyStore::new(&app.platform).unwrap();
    let t0 = app.clock.now();
    let old_kid = kid_of(&a.sign_for_user(&alice(), t0).await.unwrap());
    kid_of(&b.sign_for_user(&alice(), t0).await.unwrap());

    // `keys rotate` from another process: nobody serves the new key yet.
    app.clock.advance(Duration::seconds(5));
    let created = app.clock.now();
    let rotated = keys::rotate(
        &mut app.db.conn(),
        &sealer(&app),
        &policy(&app),
        created,
        false,
    )
    .unwrap();
    assert_eq!(rotated.published_at, None);
    assert_eq!(
        rotated.signs_from,
        created + Duration::seconds(30 + 360),
        "the latest it can sign"
    );

    // Process a reloads (its 30 s are up) and serves it from then on: that is publication.
    app.clock.set(t0 + Duration::seconds(30));
    assert_eq!(
        kid_of(&a.sign_for_user(&alice(), app.clock.now()).await.unwrap()),
        old_kid
    );
    let published = app.clock.now();
    assert!(store_kids(&a).await.contains(&rotated.kid), "published");
    let row = rows(&app)
        .into_iter()
        .find(|r| r.id == rotated.kid)
        .unwrap();
    assert_eq!(row.published_at, Some(published));
    let old = rows(&app).into_iter().find(|r| r.id == old_kid).unwrap();
    assert_eq!(
        old.expires_at,
        Some(published + Duration::seconds(360)),
        "the old key retires exactly when the new one signs"
    );

    // 360 s after creation the old key still signs (created_at no longer counts)…
    app.clock.set(created + Duration::seconds(360));
    for store in [&a, &b] {
        let token = store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap();
        assert_eq!(kid_of(&token), old_kid);
    }
    // …and 360 s after publication both processes sign with the new key, none with the old.
    app.clock.set(published + Duration::seconds(359));
    assert_eq!(
        kid_of(&b.sign_for_user(&alice(), app.clock.now()).await.unwrap()),
        old_kid
    );
    app.clock.set(published + Duration::seconds(360));
    for store in [&a, &b] {
        let token = store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap();
        assert_eq!(kid_of(&token), rotated.kid);
    }
}

#[actix_web::test]
async fn a_revoked_key_leaves_the_jwks_and_stops_signing_at_once() {
    let mut app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let t0 = app.clock.now();
    let old_kid = kid_of(&store.sign_for_user(&alice(), t0).await.unwrap());
    let rotated = store.rotate(false).await.unwrap();

    // The signing key while the new one is pending: the pending one takes over at once.
    let revoked = store.revoke(&old_kid, false).await.unwrap();
    assert_eq!(revoked.replacement, None);
    let token = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kid_of(&token), rotated.kid);
    let jwks = app.get(Role::Auth, "/api/auth/jwks").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![rotated.kid.as_str()]);
    let row = rows(&app).into_iter().find(|r| r.id == old_kid).unwrap();
    assert_eq!(row.revoked_at, Some(t0));
    assert_eq!(row.expires_at, Some(t0), "Better Auth's columns say it too");

    // Never published again, however the clock moves.
    app.clock.advance(Duration::days(1));
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await, vec![rotated.kid.clone()]);

    // Revoked twice, or a kid that does not exist: refused, nothing changes.
    let again = store.revoke(&old_kid, false).await.unwrap_err().to_string();
    assert!(again.contains("already revoked"), "{again}");
    let missing = store
        .revoke("no-such-kid", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("no key no-such-kid"), "{missing}");
}

#[actix_web::test]
async fn the_only_signing_key_is_revoked_only_with_a_replacement() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let only = kid_of(
        &store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap(),
    );

    let refused = store.revoke(&only, false).await.unwrap_err().to_string();
    assert!(
        refused.contains("only key that can sign") && refused.contains("--rotate"),
        "{refused}"
    );
    assert_eq!(store_kids(&store).await, vec![only.clone()]);
    assert!(rows(&app).iter().all(|r| r.revoked_at.is_none()));

    let revoked = store.revoke(&only, true).await.unwrap();
    let new = revoked.replacement.expect("a replacement");
    assert_eq!(store_kids(&store).await, vec![new.clone()]);
    let token = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kid_of(&token), new, "the replacement signs at once");
}

/// Another process's revocation reaches a running process at its next reload (<= 30 s).
#[actix_web::test]
async fn another_process_revocation_is_seen_at_the_next_reload() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let old_kid = kid_of(
        &store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap(),
    );
    let revoked = keys::revoke(
        &mut app.db.conn(),
        &sealer(&app),
        &policy(&app),
        app.clock.now(),
        &old_kid,
        true,
    )
    .unwrap();
    let new = revoked.replacement.unwrap();
    app.clock.advance(Duration::seconds(30));
    let token = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kid_of(&token), new);
    assert_eq!(store_kids(&store).await, vec![new]);
}

#[test]
fn an_activation_delay_shorter_than_max_age_plus_reload_is_refused_with_every_problem() {
    let config = crate::common::test_config(&[
        ("SWITCHBOARD__AUTH__JWT__ACTIVATION_DELAY_SECS", "329"),
        ("SWITCHBOARD__AUTH__JWT__EXPIRES_IN_SECS", "5"),
    ]);
    let problems = config.validate(&[Role::Auth]).unwrap_err().problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("auth.jwt.activation_delay_secs is 329")
                && p.contains("at least 330")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("expires_in_secs must be at least 10")),
        "every problem at once: {problems:?}"
    );
    let config =
        crate::common::test_config(&[("SWITCHBOARD__AUTH__JWT__ACTIVATION_DELAY_SECS", "330")]);
    assert!(config.validate(&[Role::Auth]).is_ok());
}

/// Issue 11 point 7: keys sealed under another JWT_SECRET are found at start, not by a 500.
#[actix_web::test]
async fn keys_sealed_under_another_jwt_secret_are_found_at_start_and_listed_unreadable() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    store.check_readable().await.unwrap();
    let kid = kid_of(
        &store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap(),
    );

    let mut config = (*app.platform.config).clone();
    config.auth.jwt_secret =
        switchboard::platform::secret::Secret::new("a-new-jwt-secret-that-sealed-nothing-0123");
    let platform = switchboard::platform::state::Platform::new(
        Arc::new(config.clone()),
        app.platform.pool.clone(),
        app.clock.clone(),
    );
    let err = KeyStore::new(&platform)
        .unwrap()
        .check_readable()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&kid), "{err}");
    assert!(err.contains("JWT_SECRET"), "{err}");
    assert!(err.contains("keys rotate --now"), "{err}");

    let other_sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap();
    let list = keys::list(
        &mut app.db.conn(),
        &other_sealer,
        &policy(&app),
        app.clock.now(),
    )
    .unwrap();
    assert!(list[0].unreadable && !list[0].signing, "{list:?}");

    // The recovery the message names: rotate --now under the new secret, then start is fine.
    keys::rotate(
        &mut app.db.conn(),
        &other_sealer,
        &policy(&app),
        app.clock.now(),
        true,
    )
    .unwrap();
    KeyStore::new(&platform)
        .unwrap()
        .check_readable()
        .await
        .unwrap();
}

/// Issue 11 point 7, end to end: `serve --role auth` refuses to start, and says how to recover.
#[test]
fn serve_refuses_the_auth_role_when_its_keys_do_not_decrypt() {
    let db = crate::common::TestDb::new();
    let command = |jwt_secret: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env_clear()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("APP_ENV", "test")
            .env("DATABASE_URL", db.url())
            .env("JWT_SECRET", jwt_secret)
            .env("AUTH_LISTEN", "127.0.0.1:0")
            .args(args);
        cmd
    };
    let old = "the-old-jwt-secret-that-sealed-the-keys-0123";
    let made = command(old, &["keys", "rotate", "--now"]).output().unwrap();
    assert!(made.status.success(), "{made:?}");

    let mut child = command(
        "a-new-jwt-secret-after-a-careless-deploy-99",
        &["serve", "--role", "auth"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with keys it cannot decrypt");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("cannot be decrypted with the configured JWT_SECRET"),
        "{stderr}"
    );
    assert!(stderr.contains("keys rotate --now"), "{stderr}");
    assert!(!stderr.contains(old), "never the secret: {stderr}");

    let listed = command(
        "a-new-jwt-secret-after-a-careless-deploy-99",
        &["keys", "list"],
    )
    .output()
    .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("unreadable"), "{listed}");
}

#[test]
fn the_signing_side_knows_the_verifiers_leeway() {
    assert_eq!(
        switchboard::auth::jwt::VERIFIER_LEEWAY_SECS,
        switchboard::trust::verifier::LEEWAY_SECS
    );
}
