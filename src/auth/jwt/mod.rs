//! The JWT plugin's signing side: keys in the `jwks` table (the only place a signing key
//! exists), the tokens signed with them, and the JWKS document. Keys and the rendered JWKS live
//! in memory and are re-read from the database every few seconds, never per request.

pub mod admin;
mod handlers;
pub mod keys;
pub mod sealed;
mod sign;

use crate::auth::config::{JWT_KEY_RELOAD_SECS, JwtConfig};
use crate::crypto::Algorithm;
use crate::db::{self, DbError, DbPool};
use crate::platform::clock::SharedClock;
use crate::platform::error::render;
use crate::platform::state::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use chrono::{DateTime, Duration, Utc};
use josekit::jws::JwsSigner;
use keys::{KeyFacts, KeyPolicy};
use sealed::{KeySealer, SealError};
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use utoipa::OpenApi;

pub use keys::{KeyInfo, Revoked, Rotated};

/// How often a process re-reads the key set, so another process's rotation is seen.
pub const REFRESH_SECS: i64 = JWT_KEY_RELOAD_SECS as i64;

/// The clock skew a verifier allows past `exp` (the connectors role's `LEEWAY_SECS`; the auth
/// role cannot name it, the trust boundary being JWKS only).
pub const VERIFIER_LEEWAY_SECS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("signing key: {0}")]
    Key(String),
    #[error(transparent)]
    Sealed(#[from] SealError),
    #[error("no signing key can be used (see earlier errors about keys that did not open)")]
    NoSigningKey,
    #[error("the user object cannot be put in a token: {0}")]
    InvalidUser(&'static str),
    /// An operator command that would do harm; the message says what to do instead.
    #[error("{0}")]
    Refused(String),
    #[error(
        "JWT signing key(s) {} cannot be decrypted with the configured JWT_SECRET (or, for keys \
         Better Auth wrote, BETTER_AUTH_SECRET): was the secret changed? /api/auth/token would \
         fail with every one of them. To recover, either set JWT_SECRET back to the value that \
         sealed them, or run `switchboard keys rotate --now` to retire them and sign with a new \
         key (tokens they signed stay verifiable until they expire; `switchboard keys revoke \
         KID` withdraws one at once). `switchboard keys list` marks them unreadable.",
        .0.join(", ")
    )]
    UnreadableKeys(Vec<String>),
}

impl ResponseError for JwtError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Db(DbError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let Self::Db(unavailable @ DbError::Unavailable(_)) = self {
            unavailable.error_response()
        } else {
            tracing::error!(error = %self, "JWT signing failed");
            render(status, "INTERNAL_SERVER_ERROR", "Internal server error")
        }
    }
}

impl From<diesel::result::Error> for JwtError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Mounts the JWKS routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/jwks", web::get().to(handlers::jwks))
        .route(
            "/.well-known/jwks.json",
            web::get().to(handlers::well_known_jwks),
        );
}

/// The JWKS routes' part of the auth role's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(handlers::jwks, handlers::well_known_jwks),
    components(schemas(handlers::JwksBody))
)]
pub struct JwtApi;

/// A key that may sign, decrypted once per refresh.
struct LoadedKey {
    kid: String,
    alg: Algorithm,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    published_at: Option<DateTime<Utc>>,
    signer: Box<dyn JwsSigner>,
}

impl KeyFacts for LoadedKey {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn alg(&self) -> Option<Algorithm> {
        Some(self.alg)
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }
    fn published_at(&self) -> Option<DateTime<Utc>> {
        self.published_at
    }
}

/// The key set as of one read of the table.
struct Snapshot {
    /// Read again at this time: the refresh interval, or earlier when a key stops signing.
    reload_at: DateTime<Utc>,
    keys: Vec<LoadedKey>,
    jwks: web::Bytes,
}

/// Signing keys, their JWKS, and rotation; one per auth role process.
pub struct KeyStore {
    pool: DbPool,
    clock: SharedClock,
    sealer: Arc<KeySealer>,
    policy: KeyPolicy,
    issuer: String,
    audience: String,
    expires_in_secs: i64,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Single flight for reloads.
    reloading: tokio::sync::Mutex<()>,
    /// Set by [`KeyStore::invalidate`]: reload at the next use.
    invalidated: AtomicBool,
}

impl KeyStore {
    pub fn new(platform: &Platform) -> Result<Self, JwtError> {
        let config = &platform.config;
        Ok(Self {
            pool: platform.pool.clone(),
            clock: platform.clock.clone(),
            sealer: Arc::new(KeySealer::new(
                &config.auth.jwt_secret,
                &config.auth.secret,
            )?),
            policy: KeyPolicy::from_config(&config.auth.jwt),
            issuer: config.auth_jwt_issuer(),
            audience: config.auth_jwt_audience(),
            expires_in_secs: secs(config.auth.jwt.expires_in_secs),
            snapshot: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(()),
            invalidated: AtomicBool::new(false),
        })
    }

    /// A store for the auth role, with the automatic rotation task running when
    /// `auth.jwt.rotation_interval_secs` is set.
    pub fn start(platform: &Platform) -> Result<Arc<Self>, JwtError> {
        let store = Arc::new(Self::new(platform)?);
        if let Some(interval) = platform.config.auth.jwt.rotation_interval_secs {
            spawn_rotation(Arc::downgrade(&store), interval);
        }
        Ok(store)
    }

    /// Signs a token for `user`, the user object exactly as get-session returns it (`id`,
    /// `name`, `email`, `emailVerified`, `image`, `createdAt`, `updatedAt`, …). Async because
    /// the first call, and one call per refresh interval, reads the key set from the database.
    pub async fn sign_for_user(
        &self,
        user: &Value,
        now: DateTime<Utc>,
    ) -> Result<String, JwtError> {
        let claims = sign::payload(
            user,
            &sign::TokenSpec {
                issuer: &self.issuer,
                audience: &self.audience,
                expires_in_secs: self.expires_in_secs,
            },
            now,
        )?;
        let snapshot = self.current(now).await?;
        let key = keys::choose_signing(&snapshot.keys, &self.policy, now)
            .ok_or(JwtError::NoSigningKey)?;
        sign::sign(key.signer.as_ref(), &key.kid, key.alg.name(), &claims)
    }

    /// The `kid` [`sign_for_user`](Self::sign_for_user) would sign with at `now` (after a key
    /// notice, once the key set is re-read).
    pub async fn signing_kid(&self, now: DateTime<Utc>) -> Result<String, JwtError> {
        let snapshot = self.current(now).await?;
        keys::choose_signing(&snapshot.keys, &self.policy, now)
            .map(|key| key.kid.clone())
            .ok_or(JwtError::NoSigningKey)
    }

    /// The JWKS document (`{"keys":[…]}`), rendered at the last refresh.
    pub async fn jwks_document(&self) -> Result<web::Bytes, JwtError> {
        Ok(self.current(self.clock.now()).await?.jwks.clone())
    }

    /// `keys rotate` from inside the process: the new key is published here at once, and
    /// signs the activation delay later (`immediate`: at once).
    pub async fn rotate(&self, immediate: bool) -> Result<Rotated, JwtError> {
        let (sealer, policy, now) = (self.sealer.clone(), self.policy.clone(), self.clock.now());
        let mut rotated = db::run(&self.pool, move |conn| {
            keys::rotate(conn, &sealer, &policy, now, immediate)
        })
        .await?;
        let snapshot = {
            let _guard = self.reloading.lock().await;
            self.load(self.clock.now()).await?
        };
        if let Some(published) = snapshot
            .keys
            .iter()
            .find(|k| k.kid == rotated.kid)
            .and_then(|k| k.published_at)
        {
            rotated.published_at = Some(published);
            if !immediate {
                rotated.signs_from = published + self.policy.activation_delay;
            }
        }
        Ok(rotated)
    }

    /// `keys revoke` from inside the process: withdrawn here at once.
    pub async fn revoke(&self, kid: &str, rotate: bool) -> Result<Revoked, JwtError> {
        let (sealer, policy, now) = (self.sealer.clone(), self.policy.clone(), self.clock.now());
        let kid = kid.to_owned();
        let revoked = db::run(&self.pool, move |conn| {
            keys::revoke(conn, &sealer, &policy, now, &kid, rotate)
        })
        .await?;
        self.reload(self.clock.now()).await?;
        Ok(revoked)
    }

    /// Start-up check: every key that may sign opens with the configured secrets. Refusing to
    /// serve beats answering every `/api/auth/token` with a 500.
    pub async fn check_readable(&self) -> Result<(), JwtError> {
        let (sealer, now) = (self.sealer.clone(), self.clock.now());
        let unreadable = db::run(&self.pool, move |conn| {
            keys::unreadable_live_keys(conn, &sealer, now)
        })
        .await?;
        if unreadable.is_empty() {
            Ok(())
        } else {
            Err(JwtError::UnreadableKeys(unreadable))
        }
    }

    /// One tick of the automatic rotation.
    pub async fn rotate_if_due(&self) -> Result<Option<Rotated>, JwtError> {
        let (sealer, policy, now) = (self.sealer.clone(), self.policy.clone(), self.clock.now());
        let rotated = db::run(&self.pool, move |conn| {
            keys::rotate_if_due(conn, &sealer, &policy, now)
        })
        .await?;
        if rotated.is_some() {
            self.reload(self.clock.now()).await?;
        }
        Ok(rotated)
    }

    /// Re-reads the key set now (after a rotation, or when a test wants it).
    pub async fn reload(&self, now: DateTime<Utc>) -> Result<(), JwtError> {
        let _guard = self.reloading.lock().await;
        self.load(now).await.map(|_| ())
    }

    /// Another process changed the key set (a notice on `platform::notify::KEYS_CHANNEL`): the
    /// next use re-reads it, and waits for that read rather than serving the old set.
    pub fn invalidate(&self) {
        self.invalidated.store(true, Ordering::Release);
    }

    fn cached(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn current(&self, now: DateTime<Utc>) -> Result<Arc<Snapshot>, JwtError> {
        if let Some(snapshot) = self.cached() {
            let invalidated = self.invalidated.load(Ordering::Acquire);
            if now < snapshot.reload_at && !invalidated {
                return Ok(snapshot);
            }
            // Stale: one caller reloads; the others keep using what they have meanwhile, and a
            // failed reload (database down) keeps the old set. Invalidated (another process
            // changed the keys): everyone waits for the one reload.
            let _guard = if invalidated {
                let guard = self.reloading.lock().await;
                if !self.invalidated.load(Ordering::Acquire)
                    && let Some(fresh) = self.cached()
                    && now < fresh.reload_at
                {
                    return Ok(fresh);
                }
                guard
            } else {
                let Ok(guard) = self.reloading.try_lock() else {
                    return Ok(snapshot);
                };
                guard
            };
            self.invalidated.store(false, Ordering::Release);
            return match self.load(now).await {
                Ok(fresh) => Ok(fresh),
                Err(err) if snapshot.keys.iter().any(|k| k.is_live(now)) => {
                    tracing::warn!(error = %err, "reloading JWT keys failed; using the cached set");
                    Ok(snapshot)
                }
                Err(err) => Err(err),
            };
        }
        let _guard = self.reloading.lock().await;
        if let Some(snapshot) = self.cached()
            && now < snapshot.reload_at
        {
            return Ok(snapshot);
        }
        self.invalidated.store(false, Ordering::Release);
        self.load(now).await
    }

    /// Reads (and if need be generates) the key set. Call with `reloading` held.
    async fn load(&self, now: DateTime<Utc>) -> Result<Arc<Snapshot>, JwtError> {
        let (sealer, policy) = (self.sealer.clone(), self.policy.clone());
        let snapshot = db::run(&self.pool, move |conn| {
            if let Some(kid) = keys::ensure_live_key(conn, &sealer, &policy, now)? {
                tracing::info!(%kid, "generated a JWT signing key");
            }
            // This process serves what it loads from now on: that is publication.
            for kid in keys::publish(conn, &policy, now)? {
                tracing::info!(%kid, signs_from = %(now + policy.activation_delay), "published a JWT signing key");
            }
            let rows = keys::load_published(conn, &policy, now)?;
            build_snapshot(rows, &sealer, &policy, now)
        })
        .await?;
        let snapshot = Arc::new(snapshot);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
        Ok(snapshot)
    }
}

fn build_snapshot(
    rows: Vec<keys::JwkRow>,
    sealer: &KeySealer,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Snapshot, JwtError> {
    let mut entries = Vec::with_capacity(rows.len());
    let mut loaded = Vec::new();
    let mut reload_at = now + Duration::seconds(REFRESH_SECS);
    for row in rows {
        let Ok(public) = serde_json::from_str::<Map<String, Value>>(&row.public_key) else {
            tracing::error!(kid = %row.id, "jwks row has an unreadable public key; not published");
            continue;
        };
        let alg = keys::effective_alg(row.alg.as_deref(), &public, policy.alg);
        // Better Auth: {alg: row.alg ?? config alg, crv: row.crv ?? config crv, ...publicKey, kid}
        let mut entry = Map::new();
        entry.insert("alg".into(), json!(alg));
        if let Some(crv) = row
            .crv
            .as_deref()
            .or_else(|| public.get("crv").and_then(Value::as_str))
        {
            entry.insert("crv".into(), json!(crv));
        }
        entry.extend(public);
        entry.insert("kid".into(), json!(row.id));
        entries.push(Value::Object(entry));

        if let Some(unpublish) = row.unpublish_at {
            reload_at = reload_at.min(unpublish);
        }
        if let Some(activates) = row.published_at.map(|p| p + policy.activation_delay)
            && activates > now
        {
            reload_at = reload_at.min(activates);
        }
        if row.expires_at.is_some_and(|e| e <= now) {
            continue;
        }
        if let Some(expires) = row.expires_at {
            reload_at = reload_at.min(expires);
        }
        let signer = Algorithm::from_name(&alg)
            .ok_or_else(|| JwtError::Key(format!("unsupported signing algorithm {alg}")))
            .and_then(|alg| {
                let jwk = sealer.open(&row.id, &row.private_key)?;
                Ok((alg, keys::signer_for(alg, &jwk)?))
            });
        match signer {
            Ok((alg, signer)) => loaded.push(LoadedKey {
                kid: row.id,
                alg,
                created_at: row.created_at,
                expires_at: row.expires_at,
                published_at: row.published_at,
                signer,
            }),
            Err(err) => {
                tracing::error!(kid = %row.id, error = %err, "JWT signing key cannot be used")
            }
        }
    }
    let jwks = serde_json::to_vec(&json!({ "keys": entries }))
        .map_err(|e| JwtError::Key(e.to_string()))?;
    Ok(Snapshot {
        reload_at,
        keys: loaded,
        jwks: web::Bytes::from(jwks),
    })
}

fn spawn_rotation(store: Weak<KeyStore>, interval_secs: u64) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: automatic JWT key rotation is not running");
        return;
    };
    // Check often enough to be on time, rarely enough to cost nothing.
    let period = std::time::Duration::from_secs((interval_secs / 20).clamp(10, 300));
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else { break };
            match store.rotate_if_due().await {
                Ok(Some(rotated)) => tracing::info!(kid = %rotated.kid, signs_from = %rotated.signs_from, "rotated the JWT signing key"),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "automatic JWT key rotation failed; will retry"),
            }
        }
    });
}

/// Seconds from configuration as a signed count; validation bounds them far below overflow.
fn secs(value: u64) -> i64 {
    i64::try_from(value)
        .unwrap_or(i64::MAX)
        .min(keys::MAX_CONFIG_SECS)
}

impl KeyPolicy {
    pub fn from_config(jwt: &JwtConfig) -> Self {
        Self {
            alg: jwt.alg,
            grace: Duration::seconds(secs(jwt.grace_period_secs)),
            activation_delay: Duration::seconds(secs(jwt.activation_delay_secs)),
            rotation_interval: jwt
                .rotation_interval_secs
                .map(|s| Duration::seconds(secs(s))),
            reload: Duration::seconds(REFRESH_SECS),
            token_lifetime: Duration::seconds(secs(jwt.expires_in_secs) + VERIFIER_LEEWAY_SECS),
        }
    }
}
