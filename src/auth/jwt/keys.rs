//! Signing keys in the `jwks` table: generation, storage, publication, which key signs, rotation
//! and revocation. Every write runs in a transaction under one advisory lock, so several
//! processes never both generate or rotate. Nothing here runs per request.
//!
//! A key's life: created (by `keys rotate` or lazily) → published (first served in a JWKS; the
//! first process that reloads stamps `published_at`) → signs once it has been published for the
//! activation delay, which retires every older key at that moment → stays in the JWKS for the
//! grace period after it stopped signing (or only as long as its tokens live, after
//! `rotate --now`) → gone. `keys revoke` ends all of that at once.

use super::JwtError;
use super::sealed::KeySealer;
use crate::crypto::Algorithm;
use crate::db::DbError;
use crate::db::schema::jwks;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, RS256};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

/// `pg_advisory_xact_lock` key guarding key generation and rotation (any fixed i64).
const KEYS_LOCK: i64 = 0x5357_4a57_4b53; // "SWJWKS"

/// Ten years: configured durations are clamped here so date arithmetic cannot overflow.
pub const MAX_CONFIG_SECS: i64 = 315_360_000;

/// What key generation and selection need from configuration.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub alg: Algorithm,
    pub grace: Duration,
    pub activation_delay: Duration,
    pub rotation_interval: Option<Duration>,
    /// How long a process may take to see a change to the table (its reload interval).
    pub reload: Duration,
    /// The longest a token lives (`exp - iat`) plus the verifiers' clock leeway: how long a
    /// key that stopped signing at once must stay published for the tokens it signed.
    pub token_lifetime: Duration,
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
    pub published_at: Option<DateTime<Utc>>,
    pub unpublish_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
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
    /// `None` for a row naming an algorithm switchboard does not sign with.
    fn alg(&self) -> Option<Algorithm>;
    fn created_at(&self) -> DateTime<Utc>;
    fn expires_at(&self) -> Option<DateTime<Utc>>;
    /// First served in a JWKS; `None` while no process has served it yet.
    fn published_at(&self) -> Option<DateTime<Utc>>;

    /// May sign at `now` (Better Auth: not expired).
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at().is_none_or(|e| e > now)
    }
}

/// The key that signs at `now`. Among live keys that have been *published* (first served in a
/// JWKS) for the activation delay, Better Auth's rule: the configured algorithm first, then the
/// newest. While no key has been published that long (a fresh deployment, `rotate --now`, or a
/// revocation), the key published longest signs.
pub fn choose_signing<'a, K: KeyFacts>(
    keys: &'a [K],
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Option<&'a K> {
    use std::cmp::Reverse;
    let wanted = Some(policy.alg);
    let live = || keys.iter().filter(move |k| k.is_live(now));
    live()
        .filter(|k| {
            k.published_at()
                .is_some_and(|p| p + policy.activation_delay <= now)
        })
        .max_by_key(|k| (k.alg() == wanted, k.created_at()))
        .or_else(|| {
            live().max_by_key(|k| {
                (
                    k.alg() == wanted,
                    k.published_at().is_some(),
                    Reverse(k.published_at()),
                    Reverse(k.created_at()),
                )
            })
        })
}

/// The algorithm a row signs with: its `alg` column, else what its key type implies (rows from
/// Better Auth before 1.7 have no `alg`; Better Auth reads them with its configured alg).
pub fn effective_alg(
    row_alg: Option<&str>,
    public_jwk: &Map<String, Value>,
    configured: Algorithm,
) -> String {
    if let Some(alg) = row_alg.filter(|a| !a.is_empty()) {
        return alg.to_owned();
    }
    let implied = match public_jwk.get("kty").and_then(Value::as_str) {
        Some("OKP") => Algorithm::EdDsa,
        Some("EC") => Algorithm::Es256,
        Some("RSA") if configured == Algorithm::Ps256 => Algorithm::Ps256,
        Some("RSA") => Algorithm::Rs256,
        _ => configured,
    };
    implied.name().to_owned()
}

/// A signer for a decrypted private JWK.
pub fn signer_for(alg: Algorithm, private_jwk: &[u8]) -> Result<Box<dyn JwsSigner>, JwtError> {
    let jwk = Jwk::from_bytes(private_jwk).map_err(|e| JwtError::Key(e.to_string()))?;
    alg.signer(&jwk).map_err(|e| JwtError::Key(e.to_string()))
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

fn generate(alg: Algorithm) -> Result<Generated, JwtError> {
    use josekit::jwk::KeyPair;
    let err = |e: josekit::JoseError| JwtError::Key(e.to_string());
    let (private, public, crv): (Jwk, Jwk, Option<&'static str>) = match alg {
        Algorithm::EdDsa => {
            let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(err)?;
            (
                pair.to_jwk_private_key(),
                pair.to_jwk_public_key(),
                Some("Ed25519"),
            )
        }
        Algorithm::Es256 => {
            let pair = ES256.generate_key_pair().map_err(err)?;
            (
                pair.to_jwk_private_key(),
                pair.to_jwk_public_key(),
                Some("P-256"),
            )
        }
        // PS256 uses a plain RSA key, as jose (Better Auth) does.
        Algorithm::Rs256 | Algorithm::Ps256 => {
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
        alg: alg.name(),
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
        .execute(conn)?;
    announce(conn)?;
    Ok(kid)
}

/// Tells every auth process to reload the key set when this transaction commits (and every
/// connectors process to refetch the JWKS).
fn announce(conn: &mut PgConnection) -> diesel::QueryResult<()> {
    use crate::platform::notify;
    notify::send(conn, notify::KEYS_CHANNEL, "")
}

/// As [`announce`], naming the revoked key (`{"revoked":"<kid>"}`): a verifier drops it from its
/// cached set at once, whatever a JWKS fetch racing the auth processes' reload still returns.
fn announce_revoked(conn: &mut PgConnection, kid: &str) -> diesel::QueryResult<()> {
    use crate::platform::notify;
    let payload = serde_json::json!({ "revoked": kid }).to_string();
    notify::send(conn, notify::KEYS_CHANNEL, &payload)
}

type NotExpired = diesel::dsl::Or<
    diesel::dsl::IsNull<jwks::expires_at>,
    diesel::dsl::Gt<jwks::expires_at, DateTime<Utc>>,
>;
type LiveFilter = diesel::dsl::And<NotExpired, diesel::dsl::IsNull<jwks::revoked_at>>;

/// May sign at `now`: not retired, not revoked.
fn live_filter(now: DateTime<Utc>) -> LiveFilter {
    jwks::expires_at
        .is_null()
        .or(jwks::expires_at.gt(now))
        .and(jwks::revoked_at.is_null())
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
        .get_result(conn)?;
    if live > 0 {
        return Ok(None);
    }
    conn.transaction(|conn| {
        lock(conn)?;
        let live: i64 = jwks::table
            .filter(live_filter(now))
            .count()
            .get_result(conn)?;
        if live > 0 {
            return Ok(None);
        }
        insert_new(conn, sealer, policy, now).map(Some)
    })
}

/// Stamps `published_at` on every live key no process has served yet (the caller is about to
/// serve them), and retires every older live key at the moment the newest of them will sign:
/// from then on it is the newest activated key everywhere, because every process re-reads the
/// table within the reload interval, which the activation delay exceeds. Returns the kids it
/// published.
pub fn publish(
    conn: &mut PgConnection,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<String>, JwtError> {
    let pending: i64 = jwks::table
        .filter(jwks::published_at.is_null())
        .filter(live_filter(now))
        .count()
        .get_result(conn)?;
    if pending == 0 {
        return Ok(Vec::new());
    }
    conn.transaction(|conn| {
        lock(conn)?;
        let published: Vec<(String, DateTime<Utc>)> = diesel::update(
            jwks::table
                .filter(jwks::published_at.is_null())
                .filter(live_filter(now)),
        )
        .set(jwks::published_at.eq(Some(now)))
        .returning((jwks::id, jwks::created_at))
        .get_results(conn)?;
        // Newest by creation (ties, as within one millisecond, by kid).
        if let Some((newest, _)) = published
            .iter()
            .max_by_key(|(kid, created)| (*created, kid))
        {
            let retire_at = now + policy.activation_delay;
            diesel::update(
                jwks::table
                    .filter(jwks::id.ne(newest))
                    .filter(jwks::published_at.is_not_null())
                    .filter(live_filter(now))
                    .filter(
                        jwks::expires_at
                            .is_null()
                            .or(jwks::expires_at.gt(retire_at)),
                    ),
            )
            .set(jwks::expires_at.eq(Some(retire_at)))
            .execute(conn)?;
        }
        Ok(published.into_iter().map(|(kid, _)| kid).collect())
    })
}

/// Whether the JWKS serves a row at `now`: not revoked, not withdrawn early, and live or
/// retired less than the grace period ago.
pub fn is_published(row: &JwkRow, policy: &KeyPolicy, now: DateTime<Utc>) -> bool {
    row.revoked_at.is_none()
        && row.unpublish_at.is_none_or(|u| u > now)
        && row.expires_at.is_none_or(|e| e + policy.grace > now)
}

/// Every row the JWKS publishes at `now` ([`is_published`]), newest first.
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
        .filter(jwks::revoked_at.is_null())
        .filter(jwks::unpublish_at.is_null().or(jwks::unpublish_at.gt(now)))
        .order(jwks::created_at.desc())
        .select(JwkRow::as_select())
        .load(conn)?)
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub kid: String,
    /// When the new key starts signing: now (`--now`), the activation delay after it was
    /// published, or — while no process has served it yet — at the latest the activation
    /// delay after the next reload of a running auth process.
    pub signs_from: DateTime<Utc>,
    /// When a process first served it in the JWKS; `None` until one has.
    pub published_at: Option<DateTime<Utc>>,
}

/// Adds a new key. Without `immediate` the current keys keep signing until the new one has
/// been published for the activation delay (see [`publish`]), then stay in the JWKS for the
/// grace period. With `immediate` they stop signing now and stay in the JWKS only as long as a
/// token they signed can live (plus one reload interval, in which processes that have not
/// re-read the table yet still sign with them).
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
    if immediate {
        retire_now(conn, policy, now, None)?;
    }
    let kid = insert_new(conn, sealer, policy, now)?;
    let signs_from = if immediate {
        now
    } else {
        now + policy.reload + policy.activation_delay
    };
    Ok(Rotated {
        kid,
        signs_from,
        published_at: None,
    })
}

/// Stops every live key (or only `kid`) from signing now; the JWKS keeps them only as long as
/// the tokens they signed (and those signed by processes that have not reloaded yet) live.
fn retire_now(
    conn: &mut PgConnection,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
    kid: Option<&str>,
) -> Result<(), JwtError> {
    let unpublish_at = now + policy.reload + policy.token_lifetime;
    let mut query = diesel::update(jwks::table)
        .filter(live_filter(now))
        .into_boxed();
    if let Some(kid) = kid {
        query = query.filter(jwks::id.eq(kid));
    }
    query
        .set((
            jwks::expires_at.eq(Some(now)),
            jwks::unpublish_at.eq(Some(unpublish_at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub kid: String,
    /// The key rotated in because the revoked one was the only one that could sign.
    pub replacement: Option<String>,
}

/// Withdraws `kid` from the JWKS and from signing at once (running processes follow at their
/// next reload; verifiers drop it at their next fetch, so tokens it signed stop verifying).
/// Revoking the only key that can sign is refused unless `rotate` asks for a replacement,
/// which then signs at once: a revocation must not silently stop `/api/auth/token`.
pub fn revoke(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
    kid: &str,
    rotate: bool,
) -> Result<Revoked, JwtError> {
    conn.transaction(|conn| {
        lock(conn)?;
        let row: Option<JwkRow> = jwks::table
            .find(kid)
            .select(JwkRow::as_select())
            .first(conn)
            .optional()?;
        let Some(row) = row else {
            return Err(JwtError::Refused(format!("there is no key {kid}")));
        };
        if row.revoked_at.is_some() {
            return Err(JwtError::Refused(format!("key {kid} is already revoked")));
        }
        let others: i64 = jwks::table
            .filter(live_filter(now))
            .filter(jwks::id.ne(kid))
            .count()
            .get_result(conn)?;
        let live = row.expires_at.is_none_or(|e| e > now);
        let replacement = if live && others == 0 {
            if !rotate {
                return Err(JwtError::Refused(format!(
                    "key {kid} is the only key that can sign; revoking it would stop every \
                     token from being issued. Run `switchboard keys revoke {kid} --rotate` to \
                     put a new key in its place at once, or `switchboard keys rotate --now` first"
                )));
            }
            Some(insert_new(conn, sealer, policy, now)?)
        } else {
            None
        };
        diesel::update(jwks::table.find(kid))
            .set((
                jwks::revoked_at.eq(Some(now)),
                jwks::unpublish_at.eq(Some(now)),
                // Anything that reads only Better Auth's columns stops signing with it too.
                jwks::expires_at.eq(Some(row.expires_at.map_or(now, |e| e.min(now)))),
            ))
            .execute(conn)?;
        announce_revoked(conn, kid)?;
        Ok(Revoked {
            kid: kid.to_owned(),
            replacement,
        })
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
            .first(conn)?;
        // Early by the time it takes to be published and to activate, so the successor signs
        // before the current key expires.
        let due = newest.is_none_or(|created| {
            created + interval - policy.activation_delay - policy.reload <= now
        });
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
    pub published_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub signing: bool,
    /// Served in the JWKS at `now`.
    pub published: bool,
    /// Its private key does not open with the configured secrets: it cannot sign.
    pub unreadable: bool,
}

struct Facts<'a>(&'a JwkRow, String);

impl KeyFacts for Facts<'_> {
    fn kid(&self) -> &str {
        &self.0.id
    }
    fn alg(&self) -> Option<Algorithm> {
        Algorithm::from_name(&self.1)
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.0.revoked_at.is_none() && self.0.expires_at.is_none_or(|e| e > now)
    }
}

/// Live keys (ones that may sign) whose private key does not open: after `JWT_SECRET` (or,
/// for rows Better Auth wrote, `BETTER_AUTH_SECRET`) changed. Token issuing fails while one of
/// them is chosen to sign.
pub fn unreadable_live_keys(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<JwkRow> = jwks::table
        .filter(live_filter(now))
        .order(jwks::created_at.desc())
        .select(JwkRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|r| sealer.open(&r.id, &r.private_key).is_err())
        .map(|r| r.id)
        .collect())
}

/// Every row, newest first, with whether it signs, whether the JWKS publishes it at `now`, and
/// whether its private key opens with `sealer` (a process signs only with keys that open).
pub fn list(
    conn: &mut PgConnection,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<KeyInfo>, DbError> {
    let rows: Vec<JwkRow> = jwks::table
        .order(jwks::created_at.desc())
        .select(JwkRow::as_select())
        .load(conn)?;
    let unreadable: Vec<bool> = rows
        .iter()
        .map(|r| sealer.open(&r.id, &r.private_key).is_err())
        .collect();
    let facts: Vec<Facts<'_>> = rows
        .iter()
        .map(|r| {
            let public: Map<String, Value> =
                serde_json::from_str(&r.public_key).unwrap_or_default();
            Facts(r, effective_alg(r.alg.as_deref(), &public, policy.alg))
        })
        .collect();
    let can_sign: Vec<Facts<'_>> = facts
        .iter()
        .zip(&unreadable)
        .filter(|(_, bad)| !**bad)
        .map(|(f, _)| Facts(f.0, f.1.clone()))
        .collect();
    let signing = choose_signing(&can_sign, policy, now).map(|f| f.kid().to_owned());
    Ok(facts
        .iter()
        .zip(unreadable)
        .map(|(f, unreadable)| KeyInfo {
            kid: f.0.id.clone(),
            alg: f.1.clone(),
            created_at: f.0.created_at,
            expires_at: f.0.expires_at,
            published_at: f.0.published_at,
            revoked_at: f.0.revoked_at,
            signing: signing.as_deref() == Some(f.kid()),
            published: is_published(f.0, policy, now),
            unreadable,
        })
        .collect())
}
