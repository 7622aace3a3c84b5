//! The auth role's shared state and the session machinery every handler uses: creating a
//! session, finding the caller's session from the signed cookie, the cookies that go with it.

use crate::auth::config::AuthConfig;
use crate::auth::cookies::Cookies;
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::mail::Mailer;
use crate::auth::models::{NewSession, Session, User};
use crate::auth::origin::TrustedOrigins;
use crate::auth::password::Hasher;
use crate::auth::rate_limit::{RateLimiter, store_for};
use crate::auth::session_cache::SessionCache;
use crate::auth::store;
use crate::crypto::random;
use crate::db::{self, DbError, DbPool, SessionId, UserId};
use crate::platform::clock::SharedClock;
use crate::platform::config::{AppEnv, Config};
use crate::platform::notify;
use crate::platform::state::Platform;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Duration, Utc};
use diesel::QueryResult;
use futures_util::future::LocalBoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// How long a minted JWT is handed out again for the same user data.
pub const JWT_REUSE_SECS: i64 = 30;

/// A token handed out recently: the token, when it was minted, and the `kid` that signed it.
type RecentJwt = (String, DateTime<Utc>, String);
/// Most remembered JWTs; past it the memory is cleared.
const RECENT_JWTS_MAX: usize = 10_000;

pub struct AuthState {
    pub(crate) pool: DbPool,
    pub(crate) clock: SharedClock,
    pub(crate) config: Arc<Config>,
    pub(crate) cookies: Cookies,
    pub(crate) origins: TrustedOrigins,
    pub(crate) hasher: Hasher,
    /// Read by the `rate_limit::enforce` middleware; also knows which proxies to believe.
    pub(crate) rate_limiter: RateLimiter,
    /// Signing keys and the JWKS; `jwt.sign_for_user(..)` mints the tokens.
    pub jwt: Arc<crate::auth::jwt::KeyStore>,
    /// Recently minted JWTs by the user data they carry (see [`AuthState::jwt_for`]).
    recent_jwts: Mutex<HashMap<String, RecentJwt>>,
    /// Sessions `get-session` read moments ago; every change here forgets what it touches.
    pub(crate) sessions: Arc<SessionCache>,
    pub(crate) document: utoipa::openapi::OpenApi,
    pub(crate) social: crate::auth::social::Social,
    pub(crate) mailer: Mailer,
    /// When expired `verification` rows were last purged (Unix seconds, injected clock).
    last_purge: AtomicI64,
    /// The LISTEN thread, stopped and joined when the state drops.
    _listener: Option<crate::platform::notify::Listener>,
}

impl AuthState {
    pub fn new(platform: &Platform) -> anyhow::Result<Self> {
        let config = platform.config.clone();
        let auth = &config.auth;
        let origins = TrustedOrigins::new(
            &auth.base_url,
            config
                .server
                .cors_origins
                .iter()
                .chain(auth.trusted_origins.iter())
                .cloned(),
        );
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let social =
            crate::auth::social::Social::new(auth, &format!("{}/api/auth", origins.base_origin()))?;
        let mailer = Mailer::from_config(
            auth,
            platform.pool.clone(),
            platform.clock.clone(),
            config.jobs.max_attempts,
        )?;
        start_job_runner(platform, &mailer);
        let sessions = Arc::new(SessionCache::new(auth.session.cache_ttl_ms));
        let jwt = crate::auth::jwt::KeyStore::start(platform)?;
        let listener = listen_for_other_processes(platform, &sessions, &jwt);
        Ok(Self {
            _listener: listener,
            pool: platform.pool.clone(),
            clock: platform.clock.clone(),
            cookies: Cookies::new(auth.secret.expose(), config.secure_cookies()),
            origins,
            hasher: Hasher::new(cores),
            rate_limiter: RateLimiter::new(
                &auth.rate_limit,
                config.app_env,
                platform.clock.clone(),
                store_for(&auth.rate_limit, &platform.pool),
            )?,
            jwt,
            recent_jwts: Mutex::new(HashMap::new()),
            sessions,
            document: crate::auth::handlers::document(),
            social,
            mailer,
            last_purge: AtomicI64::new(i64::MIN),
            config,
        })
    }

    pub fn auth(&self) -> &AuthConfig {
        &self.config.auth
    }

    pub fn production(&self) -> bool {
        self.config.app_env == AppEnv::Production
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// `BETTER_AUTH_URL` origin + `/api/auth`: the base of emailed links and redirects.
    pub fn base_api_url(&self) -> String {
        format!("{}/api/auth", self.origins.base_origin())
    }

    /// The `BETTER_AUTH_SECRET` bytes: the key of email-verification tokens.
    pub fn secret(&self) -> &[u8] {
        self.auth().secret.expose().as_bytes()
    }

    /// Deletes expired `verification` rows, at most once a minute (Better Auth's lazy purge).
    pub async fn purge_expired_verifications(&self) -> AuthResult<()> {
        let now = self.now();
        let last = self.last_purge.load(Ordering::Relaxed);
        if now.timestamp().saturating_sub(last) < 60
            || self
                .last_purge
                .compare_exchange(last, now.timestamp(), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        self.db(move |conn| store::purge_expired_verifications(conn, now).map(|_| ()))
            .await
    }

    /// Runs diesel queries on the blocking pool.
    pub async fn db<T, F>(&self, f: F) -> AuthResult<T>
    where
        F: FnOnce(&mut diesel::PgConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        db::query(&self.pool, f).await.map_err(AuthError::from)
    }

    /// Runs work whose errors are already [`DbError`]s (the mail outbox's `enqueue_in`) on the
    /// blocking pool.
    pub async fn run<T, F>(&self, f: F) -> AuthResult<T>
    where
        F: FnOnce(&mut diesel::PgConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        db::run(&self.pool, f).await.map_err(AuthError::from)
    }

    /// Runs diesel work that may write `session` or `user` rows: those writes exist only on the
    /// [`store::Writer`], which records what get-session's memory must forget; it is forgotten
    /// on the blocking thread right after the work returns (committed), so neither a new handler
    /// nor a client that hangs up meanwhile can leave a stale answer behind.
    pub async fn write<T, F>(&self, f: F) -> AuthResult<T>
    where
        F: FnOnce(&mut store::Writer<'_>) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let sessions = self.sessions.clone();
        self.db(move |conn| {
            let mut writer = store::Writer::new(conn);
            let out = f(&mut writer);
            let forget = writer.into_forget();
            // Other auth processes forget it too (after the commit, so none re-reads the old row).
            let (users, tokens) = forget.parts();
            if let Some(payload) = crate::auth::session_cache::Notice::payload(users, tokens)
                && let Err(e) = notify::send(conn, notify::SESSION_CHANNEL, &payload)
            {
                tracing::warn!(error = %e, "could not announce a session change to other processes");
            }
            forget.apply(&sessions);
            out
        })
        .await
    }

    /// Creates a session row: 7 days (config), or 1 day when the user did not ask to be remembered.
    pub async fn create_session(
        &self,
        user_id: &UserId,
        remember: bool,
        client: &Client,
    ) -> AuthResult<Session> {
        let now = self.now();
        let lifetime = if remember {
            Duration::seconds(self.auth().session.expires_in_secs)
        } else {
            Duration::days(1)
        };
        let id = SessionId::generate();
        let token = random::id();
        let user_id = user_id.clone();
        let (ip, user_agent) = (client.ip.clone(), client.user_agent.clone());
        self.write(move |w| {
            w.insert_session(&NewSession {
                id: &id,
                token: &token,
                expires_at: now + lifetime,
                created_at: now,
                updated_at: now,
                ip_address: Some(&ip),
                user_agent: Some(&user_agent),
                user_id: &user_id,
            })
        })
        .await
    }

    /// The `Set-Cookie` values that sign a browser in with `token`.
    pub fn session_cookies(&self, token: &str, remember: bool, client: &Client) -> Vec<String> {
        let c = &self.cookies;
        if remember {
            let mut out = vec![c.set(
                &c.session_token,
                token,
                Some(self.auth().session.expires_in_secs),
            )];
            // Asked to be remembered now: forget an earlier "don't remember me".
            if client.dont_remember {
                out.push(c.expire(&c.dont_remember));
            }
            out
        } else {
            vec![
                c.set(&c.session_token, token, None),
                c.set(&c.dont_remember, "true", None),
            ]
        }
    }

    /// Re-issues the current session cookie (after update-user and friends), keeping the
    /// browser-session lifetime when the user asked not to be remembered.
    pub fn reissue_cookie(&self, session: &SignedIn) -> String {
        let c = &self.cookies;
        let max_age = (!session.dont_remember).then_some(self.auth().session.expires_in_secs);
        c.set(&c.session_token, &session.session.token, max_age)
    }

    /// The caller's session from the signed cookie, if it exists and has not expired.
    pub async fn current_session(&self, client: &Client) -> AuthResult<Option<SignedIn>> {
        let Some(token) = client.session_token.clone() else {
            return Ok(None);
        };
        let found = self
            .db(move |conn| store::session_with_user(conn, &token))
            .await?;
        let now = self.now();
        Ok(found
            .filter(|(session, _)| session.expires_at > now)
            .map(|(session, user)| {
                client.record_user_id(&user.id);
                SignedIn {
                    dont_remember: client.dont_remember,
                    session,
                    user,
                }
            }))
    }

    /// What the services need to know about the browser behind `req` (see [`Client`]).
    pub fn client(&self, req: &HttpRequest) -> Client {
        use actix_web::HttpMessage;
        let cookies = &self.cookies;
        Client {
            ip: self.client_ip(req),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            request_id: request_id(req),
            session_token: cookies.read_signed(req, &cookies.session_token),
            dont_remember: cookies.read_signed(req, &cookies.dont_remember).is_some(),
            span: req
                .extensions()
                .get::<tracing_actix_web::RootSpan>()
                .map(|span| tracing::Span::clone(span)),
        }
    }

    /// The client's address as stored on sessions: the TCP peer, or the forwarded address when
    /// the peer is a configured trusted proxy (never a header anyone can write).
    pub fn client_ip(&self, req: &HttpRequest) -> String {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        self.rate_limiter
            .client_ip(req.peer_addr().map(|a| a.ip()), forwarded)
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    }

    /// A JWT for `user` (the user object exactly as get-session returns it). A token minted for
    /// the same user data less than [`JWT_REUSE_SECS`] ago is handed out again: it carries the
    /// same claims, still has nearly its whole lifetime, and a browser that calls get-session on
    /// every focus does not need a fresh signature each time.
    pub async fn jwt_for(&self, user: &User, now: DateTime<Utc>) -> AuthResult<String> {
        let claims = serde_json::to_value(user).map_err(|e| AuthError::Internal(e.to_string()))?;
        let key = claims.to_string();
        let reuse = Duration::seconds(JWT_REUSE_SECS);
        // Only while its key still signs: after a rotation or revocation (here or announced by
        // another process) a reused token would carry a retired or revoked key.
        let signing = self.jwt.signing_kid(now).await?;
        if let Some((token, minted, kid)) = self
            .recent_jwts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && now >= *minted
            && now - *minted < reuse
            && *kid == signing
        {
            return Ok(token.clone());
        }
        let token = self.jwt.sign_for_user(&claims, now).await?;
        let mut recent = self.recent_jwts.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_JWTS_MAX {
            recent.clear();
        }
        recent.insert(key, (token.clone(), now, signing));
        Ok(token)
    }

    /// Whether the session is younger than `fresh_age` (Better Auth checks `createdAt`).
    pub fn is_fresh(&self, session: &Session) -> bool {
        self.now() - session.created_at < Duration::seconds(self.auth().session.fresh_age_secs)
    }
}

/// The auth role's job kinds: `mail_send` (the outbox).
pub fn job_registry(mailer: &Mailer) -> crate::jobs::Registry {
    let mut registry = crate::jobs::Registry::new();
    let mailer = mailer.clone();
    registry.register(crate::auth::mail::SEND_KIND, move |job| {
        let mailer = mailer.clone();
        async move { mailer.deliver(job).await }
    });
    registry
}

/// Starts this process's workers for the auth role's kinds when `jobs.enabled` and a tokio
/// runtime is current (as the connectors role does for its own kinds).
fn start_job_runner(platform: &Platform, mailer: &Mailer) {
    if !platform.config.jobs.enabled {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let runner = crate::jobs::Runner::new(
        platform.pool.clone(),
        platform.clock.clone(),
        platform.config.jobs.clone(),
        job_registry(mailer),
    )
    .with_wake(mailer.wake_handle());
    let _guard = runtime.enter();
    platform.jobs.add(runner.start());
}

/// The auth role's side of `LISTEN/NOTIFY`: another process's session change is forgotten here
/// at once, its key rotation makes the next use reload the key set, and a (re)connect clears the
/// session cache and invalidates the keys (changes may have been missed). The thread ends with
/// the state.
fn listen_for_other_processes(
    platform: &Platform,
    sessions: &Arc<SessionCache>,
    jwt: &Arc<crate::auth::jwt::KeyStore>,
) -> Option<notify::Listener> {
    let (sessions, jwt) = (Arc::downgrade(sessions), Arc::downgrade(jwt));
    let handler = move |event: notify::Event| {
        let (Some(sessions), Some(jwt)) = (sessions.upgrade(), jwt.upgrade()) else {
            return notify::Flow::Stop;
        };
        match event {
            notify::Event::Connected => {
                sessions.clear();
                jwt.invalidate();
            }
            notify::Event::Notification { channel, payload } => {
                if channel == notify::SESSION_CHANNEL {
                    sessions.apply_notice(&payload);
                } else if channel == notify::KEYS_CHANNEL {
                    jwt.invalidate();
                }
            }
            notify::Event::Lost | notify::Event::Idle => {}
        }
        notify::Flow::Continue
    };
    let url = platform.config.database.url.expose().to_owned();
    let channels = [notify::SESSION_CHANNEL, notify::KEYS_CHANNEL];
    notify::Listener::spawn(url, &channels, handler)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "could not start the LISTEN thread; other processes' changes show after the cache TTL");
        })
        .ok()
}

impl AuthState {
    /// The auth role's job kinds and their handlers (what its workers run).
    pub fn job_registry(&self) -> crate::jobs::Registry {
        job_registry(&self.mailer)
    }
}

/// A signed-in caller: the handler's signature says it needs one (401 `UNAUTHORIZED` otherwise).
pub struct SignedIn {
    pub session: Session,
    pub user: User,
    /// The browser holds a valid `dont_remember` cookie.
    pub dont_remember: bool,
}

impl FromRequest for SignedIn {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = auth_state(&req)?;
            state
                .current_session(&state.client(&req))
                .await?
                .ok_or(AuthError::unauthorized(Code::Unauthorized))
        })
    }
}

fn auth_state(req: &HttpRequest) -> AuthResult<web::Data<AuthState>> {
    req.app_data::<web::Data<AuthState>>()
        .cloned()
        .ok_or_else(|| AuthError::Internal("auth state missing".into()))
}

/// The browser behind a request, as the services see it: no actix type, read once per request.
#[derive(Clone, Default)]
pub struct Client {
    /// As stored on sessions (see [`AuthState::client_ip`]).
    pub ip: String,
    pub user_agent: String,
    /// For work that outlives the request, such as mail.
    pub request_id: Option<String>,
    /// The session token of the signed `session_token` cookie, if the signature holds.
    pub session_token: Option<String>,
    /// The browser holds a valid `dont_remember` cookie.
    pub dont_remember: bool,
    /// The request's root span, which names the user once known.
    span: Option<tracing::Span>,
}

impl Client {
    /// Names the signed-in user on the request's span (and so in its logs).
    pub fn record_user_id(&self, user_id: &str) {
        if let Some(span) = &self.span {
            span.record("user_id", user_id);
        }
    }
}

impl FromRequest for Client {
    type Error = AuthError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(auth_state(req).map(|state| state.client(req)))
    }
}

/// The request id tracing gave this request (also sent as `x-request-id`), for work that
/// outlives the request, such as mail.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    use actix_web::HttpMessage;
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(ToString::to_string)
}
