//! The connectors role trusts only JWTs it can verify against the auth role's JWKS, fetched over
//! HTTP from a real auth listener: `GET /api/me`, every rejection, rotation, the refetch
//! cooldown, and the auth role being down.

use crate::common::{LiveServer, Seen, TestApp};
use crate::jwt::{BA_JWKS, BA_JWT, BA_JWT_IAT, BA_URL, alice, decode_part};
use actix_web::http::header;
use actix_web::test::TestRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::auth::jwt::KeyStore;
use switchboard::platform::clock::{Clock, ManualClock};
use switchboard::platform::role::Role;
use switchboard::platform::state::Platform;
use switchboard::trust::{HttpJwksSource, TrustError, Verifier};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A real auth listener, a connectors app that fetches its JWKS over HTTP, one clock for both,
/// and a key store on the auth database to mint tokens (as the /token endpoint will).
struct Pair {
    auth: LiveServer,
    connectors: TestApp,
    minter: KeyStore,
}

impl Pair {
    async fn new() -> Self {
        let auth = LiveServer::start(Role::Auth, &[]).await;
        let jwks_url = auth.url("/api/auth/jwks");
        let mut connectors = TestApp::with_env(&[("AUTH_JWKS_URL", jwks_url.as_str())]);
        share_clock(&mut connectors, auth.clock.clone());
        let minter = KeyStore::new(&auth.platform).unwrap();
        Self {
            auth,
            connectors,
            minter,
        }
    }

    /// As [`new`](Self::new), but both roles on one database, as in a deployment: the auth
    /// role's key notices (`LISTEN/NOTIFY`) reach the connectors role.
    async fn on_one_database() -> Self {
        use crate::common::{TestDb, app::test_config};
        let db = TestDb::new();
        let clock = Arc::new(ManualClock::starting_now());
        let config = test_config(&[("DATABASE_URL", db.url())]);
        let pool = switchboard::db::build_pool(&config.database);
        let platform = Platform::new(Arc::new(config), pool, clock.clone());
        let auth = LiveServer::serve(Role::Auth, platform, clock.clone(), None).await;
        let jwks_url = auth.url("/api/auth/jwks");
        let config = test_config(&[
            ("DATABASE_URL", db.url()),
            ("AUTH_JWKS_URL", jwks_url.as_str()),
        ]);
        let mut connectors = TestApp::from_parts(db, config);
        share_clock(&mut connectors, clock);
        let minter = KeyStore::new(&auth.platform).unwrap();
        Self {
            auth,
            connectors,
            minter,
        }
    }

    fn now(&self) -> DateTime<chrono::Utc> {
        self.auth.clock.now()
    }

    async fn token(&self) -> String {
        self.minter
            .sign_for_user(&alice(), self.now())
            .await
            .unwrap()
    }

    async fn me(&mut self, token: &str) -> Seen {
        me(&mut self.connectors, token).await
    }
}

/// Both apps must agree on "now"; the connectors app mounts lazily, so this is before any call.
fn share_clock(app: &mut TestApp, clock: Arc<ManualClock>) {
    app.platform.clock = clock.clone();
    app.clock = clock;
}

async fn me(app: &mut TestApp, token: &str) -> Seen {
    app.call(
        Role::Connectors,
        TestRequest::get()
            .uri("/api/me")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
    )
    .await
}

#[track_caller]
fn assert_invalid(res: &Seen, why: &str) {
    assert_eq!(
        res.status,
        401,
        "{why}: {:?}",
        String::from_utf8_lossy(&res.body)
    );
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\""),
        "{why}"
    );
    assert_eq!(res.json()["code"], "INVALID_TOKEN", "{why}");
}

fn with_header(token: &str, header: Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    parts.join(".")
}

#[actix_web::test]
async fn a_token_from_the_auth_key_store_is_accepted_by_api_me() {
    let mut pair = Pair::new().await;
    let res = pair.me(&pair.token().await).await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(
        res.json(),
        json!({"id": "7Lyx3XsSS1y846nd97RiOMheXnz17uTH", "email": "alice@example.com", "name": "Alice"})
    );
    let doc = pair
        .connectors
        .get(Role::Connectors, "/openapi.json")
        .await
        .json();
    assert!(doc["paths"]["/api/me"]["get"].is_object());
}

#[actix_web::test]
async fn no_bearer_token_is_401_with_a_bare_challenge() {
    let mut pair = Pair::new().await;
    for req in [
        TestRequest::get().uri("/api/me"),
        TestRequest::get()
            .uri("/api/me")
            .insert_header((header::AUTHORIZATION, "Basic YWxpY2U6cHc=")),
        TestRequest::get()
            .uri("/api/me")
            .insert_header((header::AUTHORIZATION, "Bearer ")),
    ] {
        let res = pair.connectors.call(Role::Connectors, req).await;
        assert_eq!(res.status, 401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        assert_eq!(res.json()["code"], "UNAUTHORIZED");
    }
}

#[actix_web::test]
async fn forged_expired_and_misdirected_tokens_are_rejected() {
    let mut pair = Pair::new().await;
    let good = pair.token().await;
    assert_eq!(pair.me(&good).await.status, 200);
    let header = decode_part(&good, 0);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = good.split('.').collect();

    // Tampered payload under the original signature.
    let mut claims = decode_part(&good, 1);
    claims["sub"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_invalid(&pair.me(&tampered).await, "tampered payload");

    // Tampered signature bytes.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 0x01;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_invalid(&pair.me(&bad_sig).await, "tampered signature");

    // alg none, with and without a signature.
    let none = with_header(&good, json!({"alg": "none", "kid": kid}));
    let unsigned = format!("{}.{}.", none.split('.').next().unwrap(), parts[1]);
    assert_invalid(&pair.me(&unsigned).await, "alg none");
    assert_invalid(&pair.me(&none).await, "alg none with a signature");

    // HS256 keyed with the public key (the classic key-confusion forgery), both as the raw key
    // bytes and as the JWK JSON a naive verifier would use.
    let jwks = pair.auth.platform.clone();
    let doc: Value =
        serde_json::from_slice(&KeyStore::new(&jwks).unwrap().jwks_document().await.unwrap())
            .unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(doc["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    for secret in [x, serde_json::to_vec(&doc["keys"][0]).unwrap()] {
        let h = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&json!({"alg": "HS256", "kid": kid})).unwrap());
        let input = format!("{h}.{}", parts[1]);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let tag = ring::hmac::sign(&key, input.as_bytes());
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_invalid(&pair.me(&forged).await, "HS256 with the public key");
    }

    // Unknown kid (refetch is in cooldown, and the auth role never had it anyway).
    let unknown = with_header(&good, json!({"alg": "EdDSA", "kid": "made-up-kid"}));
    assert_invalid(&pair.me(&unknown).await, "unknown kid");
    // No kid at all.
    assert_invalid(
        &pair.me(&with_header(&good, json!({"alg": "EdDSA"}))).await,
        "no kid",
    );

    // Wrong audience / issuer: signed with the real key, by a store configured differently.
    for (field, value) in [
        ("audience", "https://elsewhere.example"),
        ("issuer", "https://evil.example"),
    ] {
        let mut config = (*pair.auth.platform.config).clone();
        match field {
            "audience" => config.auth.jwt.audience = Some(value.to_owned()),
            _ => config.auth.jwt.issuer = Some(value.to_owned()),
        }
        let platform = Platform::new(
            Arc::new(config),
            pair.auth.platform.pool.clone(),
            pair.auth.platform.clock.clone(),
        );
        let token = KeyStore::new(&platform)
            .unwrap()
            .sign_for_user(&alice(), pair.now())
            .await
            .unwrap();
        let res = pair.me(&token).await;
        assert_invalid(&res, field);
        assert!(
            res.json()["message"].as_str().unwrap().contains(field),
            "{}",
            res.json()
        );
    }

    // Expired: past exp (900 s) and the 30 s leeway. The token never appears in the error.
    pair.auth.clock.advance(Duration::seconds(900 + 31));
    let res = pair.me(&good).await;
    assert_invalid(&res, "expired");
    assert!(res.json()["message"].as_str().unwrap().contains("expired"));
    assert!(!String::from_utf8_lossy(&res.body).contains(parts[2]));
}

#[actix_web::test]
async fn after_keys_rotate_old_tokens_still_validate_and_new_ones_carry_the_new_kid() {
    let mut pair = Pair::new().await;
    let old = pair.token().await;
    let old_kid = decode_part(&old, 0)["kid"].as_str().unwrap().to_owned();
    assert_eq!(pair.me(&old).await.status, 200);

    // `switchboard keys rotate` from another process; nobody restarts.
    let rotated = pair.minter.rotate(false).await.unwrap();
    pair.auth.clock.advance(Duration::seconds(361));
    let new = pair.token().await;
    assert_eq!(decode_part(&new, 0)["kid"], rotated.kid.as_str());
    assert_ne!(rotated.kid, old_kid);

    assert_eq!(
        pair.me(&new).await.status,
        200,
        "new kid fetched from the running auth role"
    );
    assert_eq!(pair.me(&old).await.status, 200, "old key still published");
}

/// `keys revoke`: the key leaves the auth role's JWKS at once, and a verifier drops it (and
/// every token it signed, even one it has verified before) at its next fetch.
#[actix_web::test]
async fn a_revoked_key_stops_verifying_at_the_verifiers_next_fetch() {
    let mut pair = Pair::new().await;
    let old = pair.token().await;
    let old_kid = decode_part(&old, 0)["kid"].as_str().unwrap().to_owned();
    assert_eq!(pair.me(&old).await.status, 200);

    let revoked = pair.minter.revoke(&old_kid, true).await.unwrap();
    let new_kid = revoked.replacement.unwrap();
    // The auth role reloads its keys within 30 s; the verifier's copy is fresh for max-age.
    pair.auth.clock.advance(Duration::seconds(299));
    assert_eq!(pair.me(&old).await.status, 200, "cached JWKS still fresh");
    pair.auth.clock.advance(Duration::seconds(2));
    assert_invalid(&pair.me(&old).await, "revoked key, next fetch");

    let new = pair.token().await;
    assert_eq!(decode_part(&new, 0)["kid"], new_kid.as_str());
    assert_eq!(pair.me(&new).await.status, 200);
    assert_invalid(&pair.me(&old).await, "still refused afterwards");
}

/// On one database the connectors role hears `keys revoke` and `keys rotate --now` at once
/// (`LISTEN/NOTIFY`): the clock does not move, so neither the JWKS cache TTL (300 s) nor the
/// refetch cooldown (30 s) runs out, and only the notice can explain what the verifier does.
#[actix_web::test]
async fn key_notices_reach_the_connectors_role_without_waiting_for_the_cache() {
    let mut pair = Pair::on_one_database().await;
    let old = pair.token().await;
    let old_kid = decode_part(&old, 0)["kid"].as_str().unwrap().to_owned();
    assert_eq!(pair.me(&old).await.status, 200);
    // The auth listener's and the connectors listener's.
    crate::scale::listeners_ready(&pair.connectors, 2).await;

    let revoked = pair.minter.revoke(&old_kid, true).await.unwrap();
    let replacement = revoked.replacement.unwrap();
    let deadline = within_seconds();
    while pair.me(&old).await.status != 401 {
        deadline.check("the revoked key is refused");
    }
    let new = pair.token().await;
    assert_eq!(decode_part(&new, 0)["kid"], replacement.as_str());
    assert_eq!(pair.me(&new).await.status, 200);

    // A key that signs at once: its tokens verify at once, though an unknown kid within the
    // cooldown would not be fetched for.
    let rotated = pair.minter.rotate(true).await.unwrap();
    let newest = pair.token().await;
    assert_eq!(decode_part(&newest, 0)["kid"], rotated.kid.as_str());
    let deadline = within_seconds();
    while pair.me(&newest).await.status != 200 {
        deadline.check("the new key verifies");
    }
    assert_invalid(&pair.me(&old).await, "still refused afterwards");
}

/// A bound of 5 s on a condition polled in a loop (notices travel on real time, not the test's
/// clock); each request is the pause between polls.
struct Deadline(std::time::Instant);

fn within_seconds() -> Deadline {
    Deadline(std::time::Instant::now() + std::time::Duration::from_secs(5))
}

impl Deadline {
    #[track_caller]
    fn check(&self, what: &str) {
        assert!(std::time::Instant::now() < self.0, "{what}: not after 5 s");
    }
}

#[actix_web::test]
async fn with_the_auth_listener_down_cached_keys_still_verify() {
    let mut pair = Pair::new().await;
    assert_eq!(pair.me(&pair.token().await).await.status, 200);
    pair.auth.stop().await;

    // Past the cache TTL (300 s): the refetch fails and the last good set stays in use.
    pair.auth.clock.advance(Duration::seconds(400));
    let fresh = pair.token().await;
    assert_eq!(pair.me(&fresh).await.status, 200);
    pair.auth.clock.advance(Duration::seconds(60));
    assert_eq!(pair.me(&fresh).await.status, 200);
    // An unknown kid is still just an invalid token, not an outage.
    let unknown = with_header(&fresh, json!({"alg": "EdDSA", "kid": "made-up-kid"}));
    assert_invalid(&pair.me(&unknown).await, "unknown kid while auth is down");
}

async fn jwks_stand_in() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/auth/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "public, max-age=300")
                .set_body_raw(BA_JWKS, "application/json"),
        )
        .mount(&server)
        .await;
    server
}

fn spec_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        DateTime::from_timestamp(BA_JWT_IAT + 10, 0).unwrap(),
    ))
}

#[actix_web::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_fetch_per_cooldown() {
    let jwks = jwks_stand_in().await;
    let mut app = TestApp::with_env(&[
        ("AUTH_JWKS_URL", &format!("{}/api/auth/jwks", jwks.uri())),
        ("BETTER_AUTH_URL", BA_URL),
    ]);
    let clock = spec_clock();
    share_clock(&mut app, clock.clone());
    let fetches = || async { jwks.received_requests().await.unwrap().len() };

    assert_eq!(me(&mut app, BA_JWT).await.status, 200);
    assert_eq!(fetches().await, 1);
    for i in 0..50 {
        let forged = with_header(
            BA_JWT,
            json!({"alg": "EdDSA", "kid": format!("made-up-{i}")}),
        );
        assert_invalid(&me(&mut app, &forged).await, "made-up kid");
    }
    assert_eq!(fetches().await, 1, "no refetch within the cooldown");

    clock.advance(Duration::seconds(31));
    for i in 0..50 {
        let forged = with_header(BA_JWT, json!({"alg": "EdDSA", "kid": format!("again-{i}")}));
        assert_invalid(&me(&mut app, &forged).await, "made-up kid");
    }
    assert_eq!(
        fetches().await,
        2,
        "one refetch after the cooldown, however many tokens"
    );
    assert_eq!(
        me(&mut app, BA_JWT).await.status,
        200,
        "the known key never waits"
    );
}

#[actix_web::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let jwks = jwks_stand_in().await;
    let clock = spec_clock();
    let source =
        HttpJwksSource::new(format!("{}/api/auth/jwks", jwks.uri()), clock.clone()).unwrap();
    let verifier = Verifier::new(Arc::new(source), BA_URL, BA_URL, clock);
    let forged: Vec<String> = (0..40)
        .map(|i| with_header(BA_JWT, json!({"alg": "EdDSA", "kid": format!("k{i}")})))
        .collect();
    let results = futures_util::future::join_all(forged.iter().map(|t| verifier.verify(t))).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(TrustError::Invalid(_))))
    );
    assert_eq!(jwks.received_requests().await.unwrap().len(), 1);
}

#[actix_web::test]
async fn no_key_set_at_all_is_an_outage_not_a_bad_token() {
    // Nothing listens on port 1.
    let mut app = TestApp::with_env(&[
        ("AUTH_JWKS_URL", "http://127.0.0.1:1/api/auth/jwks"),
        ("BETTER_AUTH_URL", BA_URL),
    ]);
    share_clock(&mut app, spec_clock());
    let res = me(&mut app, BA_JWT).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.json()["code"], "SERVICE_UNAVAILABLE");
}

#[actix_web::test]
async fn tokens_from_api_auth_token_and_set_auth_jwt_are_accepted_by_api_me() {
    let mut pair = Pair::new().await;
    let http = reqwest::Client::new();
    let signed_up = http
        .post(pair.auth.url("/api/auth/sign-up/email"))
        .json(&json!({"name": "Zed", "email": "zed@example.com", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 200);
    let cookie = signed_up.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let user_id = signed_up.json::<Value>().await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let anonymous = http
        .get(pair.auth.url("/api/auth/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let no_session = http
        .get(pair.auth.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap();
    assert!(
        no_session.headers().get("set-auth-jwt").is_none(),
        "no session, no JWT"
    );

    let token = http
        .get(pair.auth.url("/api/auth/token"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = http
        .get(pair.auth.url("/api/auth/get-session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let header_jwt = session.headers()["set-auth-jwt"]
        .to_str()
        .unwrap()
        .to_owned();

    for jwt in [token, header_jwt] {
        let res = pair.me(&jwt).await;
        assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
        assert_eq!(
            res.json(),
            json!({"id": user_id, "email": "zed@example.com", "name": "Zed"})
        );
    }
}
