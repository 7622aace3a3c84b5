//! Signing keys in the `jwks` table: generation, storage, which key signs, rotation. Every write
//! runs in a transaction under one advisory lock, so several processes never both generate or
//! rotate. Reading a key set for signing is [`load`]; nothing here runs per request.

use super::JwtError;
use super::sealed::KeySealer;
use crate::db::DbError;
use crate::db::schema::jwks;
use crate::platform::config::JwtAlgorithm;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, PS256, RS256};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

/// `pg_advisory_xact_lock` key guarding key generation and rotation (any fixed i64).
const KEYS_LOCK: i64 = 0x5357_4a57_4b53; // "SWJWKS"

/// Ten years: configured durations are clamped here so date arithmetic cannot overflow.
pub const MAX_CONFIG_SECS: i64 = 315_360_000;

/// What key generation and selection need from configuration.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub alg: JwtAlgorithm,
    pub grace: Duration,
    pub activation_delay: Duration,
    pub rotation_interval: Option<Duration>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = jwks)]
pub struct JwkRow {
    pub id: String,
    pub public_key: String,
    pub private_key: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub alg: Option<String>,
    pub crv: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = jwks)]
struct NewJwkRow<'a> {
    id: &'a str,
    public_key: &'a str,
    private_key: &'a str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    alg: Option<&'a str>,
    crv: Option<&'a str>,
}

/// The facts about a key that decide whether it signs.
pub trait KeyFacts {
    fn kid(&self) -> &str;
    fn alg(&self) -> &str;
    fn created_at(&self) -> DateTime<Utc>;
    fn expires_at(&self) -> Option<DateTime<Utc>>;

    /// May sign at `now` (Better Auth: not expired).
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at().is_none_or(|e| e > now)
    }
}

/// The key that signs at `now`. Among live keys that have been published for the activation
/// delay, Better Auth's rule: the configured algorithm first, then the newest. While no key has
/// been published that long (a fresh deployment, or a rotation right after one), the key
/// published longest signs.
pub fn choose_signing<'a, K: KeyFacts>(
    keys: &'a [K],
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Option<&'a K> {
    let wanted = policy.alg.jose_name();
    let live = || keys.iter().filter(move |k| k.is_live(now));
    live()
        .filter(|k| k.created_at() + policy.activation_delay <= now)
        .max_by_key(|k| (k.alg() == wanted, k.created_at()))
        .or_else(|| live().max_by_key(|k| (k.alg() == wanted, std::cmp::Reverse(k.created_at()))))
}

/// The algorithm a row signs with: its `alg` column, else what its key type implies (rows from
/// Better Auth before 1.7 have no `alg`; Better Auth reads them with its configured alg).
pub fn effective_alg(
    row_alg: Option<&str>,
    public_jwk: &Map<String, Value>,
    configured: JwtAlgorithm,
) -> String {
    if let Some(alg) = row_alg.filter(|a| !a.is_empty()) {
        return alg.to_owned();
    }
    let implied = match public_jwk.get("kty").and_then(Value::as_str) {
        Some("OKP") => JwtAlgorithm::Eddsa,
        Some("EC") => JwtAlgorithm::Es256,
        Some("RSA") if configured == JwtAlgorithm::Ps256 => JwtAlgorithm::Ps256,
        Some("RSA") => JwtAlgorithm::Rs256,
        _ => configured,
    };
    implied.jose_name().to_owned()
}

/// A signer for a decrypted private JWK.
pub fn signer_for(alg: &str, private_jwk: &[u8]) -> Result<Box<dyn JwsSigner>, JwtError> {
    let jwk = Jwk::from_bytes(private_jwk).map_err(|e| JwtError::Key(e.to_string()))?;
    let signer: Box<dyn JwsSigner> = match alg {
        "EdDSA" => Box::new(
            EdDSA
                .signer_from_jwk(&jwk)
                .map_err(|e| JwtError::Key(e.to_string()))?,
        ),
        "ES256" => Box::new(
            ES256
                .signer_from_jwk(&jwk)
                .map_err(|e| JwtError::Key(e.to_string()))?,
        ),
        "RS256" => Box::new(
            RS256
                .signer_from_jwk(&jwk)
                .map_err(|e| JwtError::Key(e.to_string()))?,
        ),
        "PS256" => Box::new(
            PS256
                .signer_from_jwk(&jwk)
                .map_err(|e| JwtError::Key(e.to_string()))?,
        ),
        other => {
            return Err(JwtError::Key(format!(
                "unsupported signing algorithm {other}"
            )));
        }
    };
    Ok(signer)
}

/// A freshly generated key pair, as the row stores it.
struct Generated {
    public_jwk: String,
    private_jwk: Vec<u8>,
    alg: &'static str,
    crv: Option<&'static str>,
}

/// Only the key material: josekit adds `use`/`alg`/`kid`, Better Auth's rows carry none of them.
fn key_material(jwk: &Jwk) -> Map<String, Value> {
    let mut map: Map<String, Value> = jwk.as_ref().clone();
    for member in ["use", "alg", "kid", "key_ops"] {
        map.remove(member);
    }
    map
}

fn generate(alg: JwtAlgorithm) -> Result<Generated, JwtError> {
    use josekit::jwk::KeyPair;
    let err = |e: josekit::JoseError| JwtError::Key(e.to_string());
    let (private, public, crv): (Jwk, Jwk, Option<&'static str>) = match alg {
        JwtAlgorithm::Eddsa => {
            let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(err)?;
            (
                pair.to_jwk_private_key(),
                pair.to_jwk_public_key(),
                Some("Ed25519"),
            )
        }
        JwtAlgorithm::Es256 => {
            let pair = ES256.generate_key_pair().map_err(err)?;
            (
                pair.to_jwk_private_key(),
                pair.to_jwk_public_key(),
                Some("P-256"),
            )
        }
        // PS256 uses a plain RSA key, as jose (Better Auth) does.
        JwtAlgorithm::Rs256 | JwtAlgorithm::Ps256 => {
            let pair = RS256.generate_key_pair(2048).map_err(err)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key(), None)
        }
    };
    let public_jwk =
        serde_json::to_string(&key_material(&public)).map_err(|e| JwtError::Key(e.to_string()))?;
    let private_jwk =
        serde_json::to_vec(&key_material(&private)).map_err(|e| JwtError::Key(e.to_string()))?;
    Ok(Generated {
        public_jwk,
        private_jwk,
        alg: alg.jose_name(),
        crv,
    })
}

/// Better Auth's `generateId(32)`: 32 characters from `[a-zA-Z0-9]`, by rejection sampling.
pub fn generate_kid() -> Result<String, JwtError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while out.len() < 32 {
        rng.fill(&mut buf)
            .map_err(|_| JwtError::Key("no randomness".to_owned()))?;
        for b in buf {
            // 248 = 4 * 62: below it every symbol is equally likely.
            if b < 248 && out.len() < 32 {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

fn lock(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(KEYS_LOCK)
        .execute(conn)?;
    Ok(())
}

fn insert_new(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<String, JwtError> {
    let kid = generate_kid()?;
    let key = generate(policy.alg)?;
    let private_key = sealer.seal(&kid, &key.private_jwk)?;
    diesel::insert_into(jwks::table)
        .values(NewJwkRow {
            id: &kid,
            public_key: &key.public_jwk,
            private_key: &private_key,
            created_at: now,
            // Better Auth's meaning: the key stops signing then (and stays in the JWKS for grace).
            expires_at: policy.rotation_interval.map(|i| now + i),
            alg: Some(key.alg),
            crv: key.crv,
        })
        .execute(conn)
        .map_err(DbError::from)?;
    Ok(kid)
}

fn live_filter(
    now: DateTime<Utc>,
) -> diesel::dsl::Or<
    diesel::dsl::IsNull<jwks::expires_at>,
    diesel::dsl::Gt<jwks::expires_at, DateTime<Utc>>,
> {
    jwks::expires_at.is_null().or(jwks::expires_at.gt(now))
}

/// Makes sure some key may sign at `now`, generating one when none does (Better Auth's lazy
/// generation, and its rotation when the last key expired). Returns the new kid if it made one.
pub fn ensure_live_key(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Option<String>, JwtError> {
    let live: i64 = jwks::table
        .filter(live_filter(now))
        .count()
        .get_result(conn)
        .map_err(DbError::from)?;
    if live > 0 {
        return Ok(None);
    }
    conn.transaction(|conn| {
        lock(conn)?;
        let live: i64 = jwks::table
            .filter(live_filter(now))
            .count()
            .get_result(conn)
            .map_err(DbError::from)?;
        if live > 0 {
            return Ok(None);
        }
        insert_new(conn, sealer, policy, now).map(Some)
    })
}

/// Every row the JWKS publishes at `now` (live, or retired less than the grace period ago),
/// newest first.
pub fn load_published(
    conn: &mut PgConnection,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<JwkRow>, DbError> {
    Ok(jwks::table
        .filter(
            jwks::expires_at
                .is_null()
                .or(jwks::expires_at.gt(now - policy.grace)),
        )
        .order(jwks::created_at.desc())
        .select(JwkRow::as_select())
        .load(conn)?)
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub kid: String,
    /// When the new key starts signing (now, or after the activation delay).
    pub signs_from: DateTime<Utc>,
}

/// Adds a new key and retires the current ones: they keep signing until the new key is
/// published long enough (`immediate`: not at all), then stay in the JWKS for the grace period.
pub fn rotate(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
    immediate: bool,
) -> Result<Rotated, JwtError> {
    conn.transaction(|conn| {
        lock(conn)?;
        rotate_locked(conn, sealer, policy, now, immediate)
    })
}

fn rotate_locked(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
    immediate: bool,
) -> Result<Rotated, JwtError> {
    let retire_at = if immediate {
        now
    } else {
        now + policy.activation_delay
    };
    diesel::update(
        jwks::table.filter(
            jwks::expires_at
                .is_null()
                .or(jwks::expires_at.gt(retire_at)),
        ),
    )
    .set(jwks::expires_at.eq(Some(retire_at)))
    .execute(conn)
    .map_err(DbError::from)?;
    let kid = insert_new(conn, sealer, policy, now)?;
    Ok(Rotated {
        kid,
        signs_from: retire_at,
    })
}

/// The automatic interval: rotates when the newest live key is due (early by the activation
/// delay, so its successor is published before it stops signing). Safe from many processes.
pub fn rotate_if_due(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Option<Rotated>, JwtError> {
    let Some(interval) = policy.rotation_interval else {
        return Ok(None);
    };
    conn.transaction(|conn| {
        lock(conn)?;
        let newest: Option<DateTime<Utc>> = jwks::table
            .filter(live_filter(now))
            .select(diesel::dsl::max(jwks::created_at))
            .first(conn)
            .map_err(DbError::from)?;
        let due = newest.is_none_or(|created| created + interval - policy.activation_delay <= now);
        if !due {
            return Ok(None);
        }
        rotate_locked(conn, sealer, policy, now, false).map(Some)
    })
}

/// One line of `switchboard keys list`. Never the private key.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub signing: bool,
    pub published: bool,
}

struct Facts<'a>(&'a JwkRow, String);

impl KeyFacts for Facts<'_> {
    fn kid(&self) -> &str {
        &self.0.id
    }
    fn alg(&self) -> &str {
        &self.1
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

/// Every row, newest first, with whether it signs and whether the JWKS publishes it at `now`.
pub fn list(
    conn: &mut PgConnection,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<KeyInfo>, DbError> {
    let rows: Vec<JwkRow> = jwks::table
        .order(jwks::created_at.desc())
        .select(JwkRow::as_select())
        .load(conn)?;
    let facts: Vec<Facts<'_>> = rows
        .iter()
        .map(|r| {
            let public: Map<String, Value> =
                serde_json::from_str(&r.public_key).unwrap_or_default();
            Facts(r, effective_alg(r.alg.as_deref(), &public, policy.alg))
        })
        .collect();
    let signing = choose_signing(&facts, policy, now).map(|f| f.kid().to_owned());
    Ok(facts
        .iter()
        .map(|f| KeyInfo {
            kid: f.0.id.clone(),
            alg: f.1.clone(),
            created_at: f.0.created_at,
            expires_at: f.0.expires_at,
            signing: signing.as_deref() == Some(f.kid()),
            published: f.0.expires_at.is_none_or(|e| e + policy.grace > now),
        })
        .collect())
}
