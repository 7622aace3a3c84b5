//! The key sets, the JWKS cache against a stand-in auth role, and the notices' fetches.

use super::*;

#[test]
fn cache_control_ttl_is_bounded() {
    assert_eq!(ttl_from_cache_control("public, max-age=300"), 300);
    assert_eq!(ttl_from_cache_control("max-age=1"), MIN_TTL_SECS);
    assert_eq!(ttl_from_cache_control("max-age=999999"), MAX_TTL_SECS);
    assert_eq!(ttl_from_cache_control("no-store"), MIN_TTL_SECS);
    assert_eq!(ttl_from_cache_control("public"), DEFAULT_TTL_SECS);
}

#[test]
fn an_entry_whose_alg_does_not_fit_its_key_is_refused() {
    let okp_as_rsa = serde_json::json!({"kty":"OKP","crv":"Ed25519","alg":"RS256","kid":"a",
        "x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s"});
    assert!(VerifyingKey::from_jwk(&okp_as_rsa).is_err());
    let hmac = serde_json::json!({"kty":"oct","alg":"HS256","kid":"b","k":"c2VjcmV0"});
    assert!(VerifyingKey::from_jwk(&hmac).is_err());
    let good = serde_json::json!({"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"c",
        "x":"ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s"});
    assert_eq!(VerifyingKey::from_jwk(&good).unwrap().alg, Algorithm::EdDsa);
}

// What follows pins the rules above one by one (each assertion kills a cargo-mutants
// mutant that the tests before let live; see docs/mutation-testing.md).

use crate::platform::clock::ManualClock;
use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, RS256};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A public JWK of a fresh key pair (with `extra` merged in) and a signer for it.
fn fresh_key(alg: Algorithm, extra: Value) -> (Value, Box<dyn JwsSigner>) {
    let (private, public) = match alg {
        Algorithm::EdDsa => {
            let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
        Algorithm::Es256 => {
            let pair = ES256.generate_key_pair().unwrap();
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
        Algorithm::Rs256 | Algorithm::Ps256 => {
            let pair = RS256.generate_key_pair(2048).unwrap();
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
    };
    // josekit writes `alg`/`use` of its own; the entries under test say what they say.
    let bare = |jwk: Jwk| {
        let mut map = jwk.as_ref().clone();
        for member in ["alg", "use", "key_ops", "kid"] {
            map.remove(member);
        }
        Jwk::from_map(map).unwrap()
    };
    let (private, public) = (bare(private), bare(public));
    let signer = alg.signer(&private).unwrap();
    let mut jwk = Value::Object(public.as_ref().clone());
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        jwk[k] = v;
    }
    (jwk, signer)
}

/// An Ed25519 entry by hand, with any members.
fn okp(members: Value) -> Value {
    let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k",
        "x": "ZbgBq7Q-a86PrX-NYQIZ7V7Q1WATXNAw_xmCNNMYl9s"});
    for (k, v) in members.as_object().cloned().unwrap() {
        if v.is_null() {
            jwk.as_object_mut().unwrap().remove(&k);
        } else {
            jwk[k] = v;
        }
    }
    jwk
}

#[test]
fn each_algorithm_verifies_its_own_signature_only() {
    let mut keys = Vec::new();
    for alg in [
        Algorithm::EdDsa,
        Algorithm::Es256,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ] {
        let (jwk, signer) = fresh_key(alg, json!({"kid": alg.name(), "alg": alg.name()}));
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.alg, alg);
        assert_eq!(key.kid, alg.name());
        keys.push((key, signer));
    }
    let message = b"header.payload";
    for (key, signer) in &keys {
        let signature = signer.sign(message).unwrap();
        assert!(key.verify(message, &signature), "{:?}", key.alg);
        assert!(!key.verify(b"header.other", &signature), "{:?}", key.alg);
        let mut flipped = signature.clone();
        flipped[0] ^= 1;
        assert!(!key.verify(message, &flipped), "{:?}", key.alg);
    }
    // RS256 and PS256 over the same kind of key: neither accepts the other's signature.
    let rs = keys[2].1.sign(message).unwrap();
    let ps = keys[3].1.sign(message).unwrap();
    assert!(!keys[3].0.verify(message, &rs));
    assert!(!keys[2].0.verify(message, &ps));
}

#[test]
fn an_entry_without_alg_takes_the_one_its_key_type_implies() {
    let (rsa, _) = fresh_key(Algorithm::Rs256, json!({"kid": "r"}));
    assert_eq!(VerifyingKey::from_jwk(&rsa).unwrap().alg, Algorithm::Rs256);
    assert_eq!(
        VerifyingKey::from_jwk(&okp(json!({}))).unwrap().alg,
        Algorithm::EdDsa
    );
    let (ec, _) = fresh_key(Algorithm::Es256, json!({"kid": "e"}));
    assert_eq!(VerifyingKey::from_jwk(&ec).unwrap().alg, Algorithm::Es256);
    // An EC key on another curve, or an unknown key type, names nothing we accept.
    let mut p384 = ec.clone();
    p384["crv"] = json!("P-384");
    let why = VerifyingKey::from_jwk(&p384).unwrap_err();
    assert!(why.contains("names no usable alg"), "{why}");
    let mut oct = okp(json!({"kty": "oct"}));
    oct.as_object_mut().unwrap().remove("crv");
    assert!(
        VerifyingKey::from_jwk(&oct)
            .unwrap_err()
            .contains("names no usable alg")
    );
}

#[test]
fn alg_and_key_type_must_agree_member_by_member() {
    let (ec, _) = fresh_key(Algorithm::Es256, json!({"kid": "e", "alg": "ES256"}));
    let (rsa, _) = fresh_key(Algorithm::Rs256, json!({"kid": "r"}));
    let refused = |jwk: &Value| {
        let why = VerifyingKey::from_jwk(jwk).unwrap_err();
        assert!(why.contains("does not fit its key type"), "{jwk}: {why}");
    };
    // EdDSA needs kty OKP *and* crv Ed25519.
    refused(&okp(json!({"alg": "EdDSA", "crv": "Ed448"})));
    refused(&okp(json!({"alg": "EdDSA", "kty": "EC"})));
    // ES256 needs kty EC *and* crv P-256.
    let mut wrong_crv = ec.clone();
    wrong_crv["crv"] = json!("P-384");
    refused(&wrong_crv);
    refused(&okp(json!({"alg": "ES256", "crv": "P-256"})));
    // RS256 and PS256 need an RSA key.
    refused(&okp(json!({"alg": "PS256"})));
    let mut rsa_as_ec = ec.clone();
    rsa_as_ec["alg"] = json!("RS256");
    refused(&rsa_as_ec);
    let mut ps = rsa.clone();
    ps["alg"] = json!("PS256");
    assert_eq!(VerifyingKey::from_jwk(&ps).unwrap().alg, Algorithm::Ps256);
    let why = VerifyingKey::from_jwk(&okp(json!({"alg": "HS256"}))).unwrap_err();
    assert!(why.contains("unsupported alg HS256"), "{why}");
}

#[test]
fn kid_and_use_rules() {
    assert!(VerifyingKey::from_jwk(&okp(json!({"use": "sig"}))).is_ok());
    let why = VerifyingKey::from_jwk(&okp(json!({"use": "enc"}))).unwrap_err();
    assert!(why.contains("not for signatures"), "{why}");
    assert_eq!(
        VerifyingKey::from_jwk(&okp(json!({"kid": ""}))).unwrap_err(),
        "no kid"
    );
    assert_eq!(
        VerifyingKey::from_jwk(&okp(json!({"kid": null}))).unwrap_err(),
        "no kid"
    );
    assert_eq!(
        VerifyingKey::from_jwk(&json!(["not", "an", "object"])).unwrap_err(),
        "entry is not an object"
    );
}

#[test]
fn debug_shows_kid_and_alg_and_nothing_of_the_key() {
    let key = VerifyingKey::from_jwk(&okp(json!({"kid": "the-kid"}))).unwrap();
    let shown = format!("{key:?}");
    assert_eq!(shown, r#"VerifyingKey { kid: "the-kid", alg: EdDsa }"#);
}

#[test]
fn a_key_set_keeps_the_usable_entries_by_kid() {
    let doc = json!({"keys": [
        okp(json!({"kid": "a"})),
        okp(json!({"kid": "b", "use": "enc"})),
        okp(json!({"kid": "c"})),
    ]});
    let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 2);
    assert!(!set.is_empty());
    assert_eq!(set.get("a").unwrap().kid, "a");
    assert_eq!(set.get("c").unwrap().kid, "c");
    assert!(set.get("b").is_none());

    let empty = KeySet::from_jwks(br#"{"keys":[]}"#).unwrap();
    assert_eq!(empty.len(), 0);
    assert!(empty.is_empty());
    assert!(KeySet::from_jwks(br#"{"nokeys":[]}"#).is_err());
    assert!(KeySet::from_jwks(b"not json").is_err());
}

#[tokio::test]
async fn a_static_source_serves_its_set_and_nothing_else() {
    let doc = json!({"keys": [okp(json!({"kid": "a"}))]}).to_string();
    let source = StaticKeySource(KeySet::from_jwks(doc.as_bytes()).unwrap());
    assert_eq!(source.key("a").await.unwrap().kid, "a");
    assert!(matches!(
        source.key("b").await,
        Err(TrustError::Invalid("unknown key"))
    ));
}

#[test]
fn cache_control_directives() {
    assert_eq!(ttl_from_cache_control("no-cache"), MIN_TTL_SECS);
    assert_eq!(ttl_from_cache_control("public, No-Store"), MIN_TTL_SECS);
    assert_eq!(ttl_from_cache_control("MAX-AGE=\"120\""), 120);
    assert_eq!(ttl_from_cache_control("max-age=60, public"), 60);
    assert_eq!(ttl_from_cache_control("max-age=soon"), DEFAULT_TTL_SECS);
    assert_eq!(ttl_from_cache_control("max-age=30"), 30);
    assert_eq!(ttl_from_cache_control("max-age=3600"), 3600);
}

const T0: i64 = 1_800_000_000;

/// A JWKS stand-in whose document and headers the test changes as it goes.
struct Jwks {
    server: MockServer,
    clock: Arc<ManualClock>,
    source: HttpJwksSource,
}

impl Jwks {
    async fn serving(status: u16, body: String, cache_control: &str) -> Self {
        let server = MockServer::start().await;
        let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(T0, 0).unwrap()));
        let source = HttpJwksSource::new(format!("{}/jwks", server.uri()), clock.clone()).unwrap();
        let jwks = Self {
            server,
            clock,
            source,
        };
        jwks.serve(status, body, cache_control).await;
        jwks
    }

    async fn serve(&self, status: u16, body: String, cache_control: &str) {
        self.server.reset().await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("cache-control", cache_control)
                    .set_body_raw(body, "application/json"),
            )
            .mount(&self.server)
            .await;
    }

    /// Requests since the last `serve`.
    async fn fetches(&self) -> usize {
        self.server.received_requests().await.unwrap().len()
    }

    fn at(&self, secs: i64) {
        self.clock
            .set(DateTime::from_timestamp(T0 + secs, 0).unwrap());
    }

    async fn key(&self, kid: &str) -> Result<String, TrustError> {
        self.source.key(kid).await.map(|k| k.kid.clone())
    }
}

fn jwks_of(kids: &[&str]) -> String {
    let keys: Vec<Value> = kids.iter().map(|k| okp(json!({"kid": k}))).collect();
    json!({ "keys": keys }).to_string()
}

#[tokio::test]
async fn a_fetched_set_is_fresh_for_its_max_age_and_not_a_second_longer() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=60").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1);
    // Past the refetch cooldown but still fresh: no fetch.
    jwks.at(59);
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1, "fresh at 59 s");
    // Stale at exactly max-age: refetched, and a key gone from the new set is refused.
    jwks.serve(200, jwks_of(&["b"]), "max-age=60").await;
    jwks.at(60);
    assert!(matches!(
        jwks.key("a").await,
        Err(TrustError::Invalid("unknown key"))
    ));
    assert_eq!(jwks.fetches().await, 1, "refetched at 60 s");
    assert_eq!(jwks.key("b").await.unwrap(), "b");
    assert_eq!(jwks.fetches().await, 1);
}

#[tokio::test]
async fn unknown_kids_refetch_once_per_cooldown_to_the_second() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
    jwks.at(29);
    assert!(matches!(
        jwks.key("n").await,
        Err(TrustError::Invalid("unknown key"))
    ));
    assert_eq!(jwks.fetches().await, 0, "within the cooldown");
    jwks.at(30);
    assert_eq!(jwks.key("n").await.unwrap(), "n");
    assert_eq!(jwks.fetches().await, 1, "cooldown over at exactly 30 s");
    // The refetch made the set fresh again from 30 s on.
    jwks.at(329);
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1);
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_last_good_set() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=60").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    // An error status, even with a key set in its body, is not a key set.
    jwks.serve(500, jwks_of(&["x"]), "max-age=60").await;
    jwks.at(61);
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1);
    jwks.at(91);
    assert!(matches!(
        jwks.key("x").await,
        Err(TrustError::Invalid("unknown key"))
    ));
    assert_eq!(jwks.fetches().await, 2);
}

/// A request dropped while its fetch is in flight (a body that fails to parse drops the
/// identity extractor mid-fetch) must not leave the cooldown armed with no set: the fetch
/// finishes on its own and the next request, at the same instant, gets the key.
#[tokio::test]
async fn a_lookup_dropped_mid_fetch_does_not_leave_the_keys_unavailable() {
    use futures_util::FutureExt;
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=60").await;
    assert!(
        jwks.source.key("a").now_or_never().is_none(),
        "the fetch is in flight"
    );
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1);
}

/// A key notice (another process rotated or revoked a key): the next lookup refetches at
/// once, although the set is fresh and the cooldown running, and waits for that fetch
/// rather than using a cached key.
#[tokio::test]
async fn an_invalidated_set_is_refetched_at_once_and_not_used_meanwhile() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.serve(200, jwks_of(&["b"]), "max-age=300").await;
    jwks.at(1);
    jwks.source.invalidate(None);
    assert!(matches!(
        jwks.key("a").await,
        Err(TrustError::Invalid("unknown key"))
    ));
    assert_eq!(jwks.fetches().await, 1);
    assert_eq!(jwks.key("b").await.unwrap(), "b");
    assert_eq!(jwks.fetches().await, 1, "fresh again: no second fetch");
}

/// The auth processes hear a notice when we do: the fetch it starts may still get the old
/// set. A key the notice names as revoked stays out regardless, and a key the fetch missed
/// (one that signs at once) is fetched on first sight, not after the cooldown.
#[tokio::test]
async fn a_revocation_notice_wins_over_a_fetch_that_raced_it() {
    let jwks = Jwks::serving(200, jwks_of(&["a", "b"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.serve(200, jwks_of(&["a", "b"]), "max-age=300").await;
    jwks.at(1);
    jwks.source.invalidate_revoking(Some("a"), None);
    assert!(matches!(
        jwks.key("a").await,
        Err(TrustError::Invalid("unknown key"))
    ));
    assert_eq!(jwks.key("b").await.unwrap(), "b");
    assert!(jwks.fetches().await >= 1);
    jwks.serve(200, jwks_of(&["a", "b", "n"]), "max-age=300")
        .await;
    assert_eq!(
        jwks.key("n").await.unwrap(),
        "n",
        "no cooldown after a forced fetch"
    );
    assert!(
        matches!(jwks.key("a").await, Err(TrustError::Invalid("unknown key"))),
        "a revoked key stays out of later sets"
    );
}

/// Another process changed the keys, and the auth processes hear the notice when we do: the
/// fetches after it may still get the old set. Until a fetched set shows the change,
/// [`NOTICE_FETCHES`] more skip the cooldown, within one cooldown of the notice; a revoked
/// key never costs one.
#[tokio::test]
async fn a_notice_fetches_past_the_cooldown_until_its_change_shows() {
    let unknown = |r: Result<String, TrustError>| {
        assert!(
            matches!(r, Err(TrustError::Invalid("unknown key"))),
            "{r:?}"
        );
    };
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.serve(200, jwks_of(&["a"]), "max-age=300").await;
    jwks.at(1);
    jwks.source.invalidate_revoking(Some("a"), None);
    unknown(jwks.key("a").await);
    assert_eq!(jwks.fetches().await, 0, "no fetch for a revoked key");
    // The notice's own fetch, the one it frees from the cooldown, then the exempt ones
    // (the first lookup retries after short pauses): each gets the old set. Then the
    // cooldown holds.
    for _ in 0..4 {
        unknown(jwks.key("n").await);
    }
    assert_eq!(jwks.fetches().await, 2 + usize::from(NOTICE_FETCHES));

    // Another notice; the auth role has the new key by now.
    jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
    jwks.source.invalidate(None);
    assert_eq!(jwks.key("n").await.unwrap(), "n");
    for _ in 0..3 {
        unknown(jwks.key("m").await);
    }
    assert_eq!(
        jwks.fetches().await,
        2,
        "the change showed: the cooldown holds after the freed fetch"
    );

    // A notice whose change never shows: nothing is exempt one cooldown after it.
    jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
    jwks.source.invalidate(None);
    jwks.at(31);
    for _ in 0..3 {
        unknown(jwks.key("m").await);
    }
    assert_eq!(
        jwks.fetches().await,
        2,
        "the notice's fetch and the one it freed"
    );
}

/// A key a notice announced, missing from the set the auth role served first: the request
/// that asks for it is answered by a fetch a moment later, and so are the requests that
/// arrived meanwhile.
#[tokio::test]
async fn a_key_a_notice_announced_is_fetched_again_a_moment_later() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.server.reset().await;
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(move |_: &wiremock::Request| {
            let kids: &[&str] = if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                &["a"]
            } else {
                &["a", "n"]
            };
            ResponseTemplate::new(200).set_body_raw(jwks_of(kids), "application/json")
        })
        .mount(&jwks.server)
        .await;
    jwks.at(1);
    jwks.source.invalidate(None);
    let burst = (0..10).map(|_| jwks.source.key("n"));
    for r in futures_util::future::join_all(burst).await {
        assert_eq!(r.unwrap().kid, "n");
    }
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Many requests with unknown `kid`s at once (a burst, or an attacker's garbage) wait for
/// one fetch and share its answer rather than fetch once each.
#[tokio::test]
async fn a_burst_of_unknown_kids_costs_one_fetch() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.serve(200, jwks_of(&["a", "n"]), "max-age=300").await;
    jwks.at(1);
    jwks.source.invalidate(None);
    let burst = (0..10).map(|i| jwks.source.key(["x", "y"][i % 2]));
    for r in futures_util::future::join_all(burst).await {
        assert!(matches!(r, Err(TrustError::Invalid("unknown key"))));
    }
    assert_eq!(jwks.fetches().await, 1);
}

/// A notice while the auth role is unreachable: the last good set stays in use.
#[tokio::test]
async fn an_invalidation_whose_fetch_fails_keeps_the_last_good_set() {
    let jwks = Jwks::serving(200, jwks_of(&["a"]), "max-age=300").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    jwks.serve(503, jwks_of(&[]), "max-age=300").await;
    jwks.source.invalidate(None);
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1);
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(jwks.fetches().await, 1, "cooldown after the failed attempt");
}

#[tokio::test]
async fn no_set_ever_fetched_is_an_outage() {
    let jwks = Jwks::serving(503, jwks_of(&["a"]), "max-age=60").await;
    assert!(matches!(
        jwks.key("a").await,
        Err(TrustError::KeysUnavailable)
    ));
}

/// `jwks_of` padded with trailing spaces to exactly `len` bytes.
fn padded(kids: &[&str], len: usize) -> String {
    let mut doc = jwks_of(kids);
    doc.push_str(&" ".repeat(len - doc.len()));
    doc
}

#[tokio::test]
async fn a_document_of_256_kib_is_read_and_one_byte_more_refused() {
    let jwks = Jwks::serving(200, padded(&["a"], MAX_JWKS_BYTES), "max-age=60").await;
    assert_eq!(jwks.key("a").await.unwrap(), "a");
    assert_eq!(MAX_JWKS_BYTES, 262_144);

    let jwks = Jwks::serving(200, padded(&["a"], MAX_JWKS_BYTES + 1), "max-age=60").await;
    assert!(matches!(
        jwks.key("a").await,
        Err(TrustError::KeysUnavailable)
    ));
}
