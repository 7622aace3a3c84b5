//! `get-session`'s short memory of the sessions it has just read from the database.
//!
//! A browser asks for its session on every mount and focus, and a backend may ask on every
//! request, so the same session is read many times a second. Each read from PostgreSQL costs a
//! blocking-pool thread, a database backend and two thread wake-ups; while sign-ins keep every
//! core busy hashing passwords, those wake-ups wait for a core and the answer takes tens of
//! milliseconds. A session read less than `auth.session.cache_ttl_ms` ago (1 s by default, 0 turns
//! it off) is answered from here instead, on the HTTP worker alone.
//!
//! What it trades: every change this instance makes to a user or a session forgets the entries
//! it touches at once: the only functions that write `session` and `user` rows are the methods
//! of `store::Writer`, each of which records what to forget, and `AuthState::write` forgets it on
//! the thread that wrote, right after the write committed,
//! so one instance answers exactly as Better Auth does. Another instance's change (auth scaled
//! out to several processes) arrives as a [`Notice`] on PostgreSQL's `LISTEN/NOTIFY`
//! (`platform::notify`), sent by the writer right after its commit, and is forgotten here at
//! once; while the listener is disconnected it shows within the TTL, and a reconnect clears the
//! cache. That bound is far inside what the JWTs already allow (a revoked session's JWT stays
//! valid for its 15 minutes), and `?disableCookieCache=true`, Better Auth's own switch for "read
//! the database", always bypasses it. Only `get-session` reads from it: every endpoint that changes something, and
//! `/token`, read the database.

use crate::auth::models::{Session, User};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// Most sessions remembered, and most bytes of them (a user's `image` may be a long data URL);
/// past either the memory is cleared (at the 1 s default that takes more than 10,000 different
/// sessions a second).
const MAX_ENTRIES: usize = 10_000;
const MAX_BYTES: usize = 16 * 1024 * 1024;

pub struct SessionCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    /// By session token (the cookie's value).
    entries: HashMap<String, Entry>,
    /// Moves on every forget: a read that began before a change does not remember what it read.
    generation: u64,
    /// Roughly what `entries` holds, by [`Entry::size`].
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, token: &str) {
        if let Some(gone) = self.entries.remove(token) {
            self.bytes = self.bytes.saturating_sub(gone.size());
        }
    }
}

/// Taken before reading the database; [`SessionCache::put`] refuses a read that a change overtook.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

struct Entry {
    session: Session,
    user: User,
    read_at: DateTime<Utc>,
    /// [`token_digest`] of the session token, which is what a [`Notice`] names.
    digest: String,
}

/// NOTIFY payloads stay under PostgreSQL's 8000-byte limit; a bigger change clears everything.
const NOTICE_MAX: usize = 7900;

/// A change another process made, as sent on `platform::notify::SESSION_CHANNEL`: users by id,
/// sessions by a digest of their token (a payload is visible to any database role that listens,
/// so it never carries a token itself).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    #[serde(default, rename = "u", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, rename = "t", skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

impl Notice {
    /// The payload announcing a change to `users` and the sessions with `tokens`; `None` when
    /// nothing changed.
    pub fn payload(users: &[String], tokens: &[String]) -> Option<String> {
        if users.is_empty() && tokens.is_empty() {
            return None;
        }
        let notice = Notice {
            users: users.to_vec(),
            tokens: tokens.iter().map(|t| token_digest(t)).collect(),
            all: false,
        };
        let payload = serde_json::to_string(&notice).ok()?;
        Some(if payload.len() <= NOTICE_MAX {
            payload
        } else {
            r#"{"all":true}"#.to_owned()
        })
    }
}

/// The first 16 bytes of SHA-256 of a session token, in hex.
pub fn token_digest(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Entry {
    fn size(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        256 + self.session.token.len()
            + text(&self.session.user_agent)
            + text(&self.session.ip_address)
            + self.user.name.len()
            + self.user.email.len()
            + text(&self.user.image)
    }
}

impl SessionCache {
    pub fn new(ttl_ms: u64) -> Self {
        Self {
            ttl: Duration::milliseconds(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                generation: 0,
                bytes: 0,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Entries are whole values; a panic elsewhere cannot leave one half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take one before reading a session from the database, and hand it to [`Self::put`].
    pub fn ticket(&self) -> Ticket {
        Ticket(self.inner().generation)
    }

    /// The session with this token and its user, if they were read less than the TTL ago.
    pub fn get(&self, token: &str, now: DateTime<Utc>) -> Option<(Session, User)> {
        if self.ttl <= Duration::zero() {
            return None;
        }
        let inner = self.inner();
        let entry = inner.entries.get(token)?;
        (now >= entry.read_at && now - entry.read_at < self.ttl)
            .then(|| (entry.session.clone(), entry.user.clone()))
    }

    /// Remembers what the database answered for `session.token`, unless something changed since
    /// the `ticket` was taken.
    pub fn put(&self, ticket: Ticket, session: &Session, user: &User, now: DateTime<Utc>) {
        if self.ttl <= Duration::zero() {
            return;
        }
        let mut inner = self.inner();
        if inner.generation != ticket.0 {
            return;
        }
        let entry = Entry {
            session: session.clone(),
            user: user.clone(),
            read_at: now,
            digest: token_digest(&session.token),
        };
        inner.remove(&session.token);
        if inner.entries.len() >= MAX_ENTRIES || inner.bytes + entry.size() > MAX_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += entry.size();
        inner.entries.insert(session.token.clone(), entry);
    }

    /// This instance deleted or changed the session with this token.
    pub fn forget_token(&self, token: &str) {
        let mut inner = self.inner();
        inner.generation = inner.generation.wrapping_add(1);
        inner.remove(token);
    }

    /// The database has no such session (any more): drop what is remembered of it. Unlike
    /// [`Self::forget_token`] this changed nothing, so reads in flight may still be remembered
    /// (a stream of dead cookies must not keep everyone else's reads out of the cache).
    pub fn discard(&self, token: &str) {
        self.inner().remove(token);
    }

    /// This instance changed the user, or some of their sessions.
    pub fn forget_user(&self, user_id: &str) {
        let mut inner = self.inner();
        inner.generation = inner.generation.wrapping_add(1);
        let mut freed = 0;
        inner.entries.retain(|_, entry| {
            let keep = entry.user.id != user_id;
            if !keep {
                freed += entry.size();
            }
            keep
        });
        inner.bytes = inner.bytes.saturating_sub(freed);
    }
}

impl SessionCache {
    /// Forgets everything: the listener (re)connected and may have missed changes.
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
        inner.bytes = 0;
    }

    /// Another process changed what `payload` (a [`Notice`]) names; one that does not parse
    /// clears everything.
    pub fn apply_notice(&self, payload: &str) {
        let Ok(notice) = serde_json::from_str::<Notice>(payload) else {
            tracing::warn!("session cache: a change notice did not parse; clearing the cache");
            return self.clear();
        };
        if notice.all {
            return self.clear();
        }
        let users: HashSet<&str> = notice.users.iter().map(String::as_str).collect();
        let digests: HashSet<&str> = notice.tokens.iter().map(String::as_str).collect();
        let mut inner = self.inner();
        inner.generation = inner.generation.wrapping_add(1);
        let mut freed = 0;
        inner.entries.retain(|_, entry| {
            let keep =
                !users.contains(entry.user.id.as_str()) && !digests.contains(entry.digest.as_str());
            if !keep {
                freed += entry.size();
            }
            keep
        });
        inner.bytes = inner.bytes.saturating_sub(freed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_750_000_000_000 + ms)
            .single()
            .unwrap_or_default()
    }

    fn row(user_id: &str, token: &str) -> (Session, User) {
        let user = User {
            id: user_id.into(),
            name: "Ada".to_owned(),
            email: format!("{user_id}@example.com"),
            email_verified: false,
            image: None,
            created_at: at(0),
            updated_at: at(0),
        };
        let session = Session {
            id: format!("s-{token}").into(),
            expires_at: at(3_600_000),
            token: token.to_owned(),
            created_at: at(0),
            updated_at: at(0),
            ip_address: None,
            user_agent: None,
            user_id: user_id.into(),
        };
        (session, user)
    }

    #[test]
    fn answers_within_the_ttl_only() {
        let cache = SessionCache::new(1_000);
        let (session, user) = row("u1", "t1");
        cache.put(cache.ticket(), &session, &user, at(0));
        assert_eq!(
            cache.get("t1", at(999)).map(|(s, _)| s.id),
            Some("s-t1".into())
        );
        assert!(cache.get("t1", at(1_000)).is_none());
        // A clock that went back does not make an entry fresh.
        assert!(cache.get("t1", at(-1)).is_none());
        assert!(cache.get("t2", at(0)).is_none());
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let cache = SessionCache::new(0);
        let (session, user) = row("u1", "t1");
        cache.put(cache.ticket(), &session, &user, at(0));
        assert!(cache.get("t1", at(0)).is_none());
    }

    #[test]
    fn forgets_by_token_and_by_user() {
        let cache = SessionCache::new(1_000);
        for (user, token) in [("u1", "a"), ("u1", "b"), ("u2", "c")] {
            let (session, user) = row(user, token);
            cache.put(cache.ticket(), &session, &user, at(0));
        }
        cache.forget_token("a");
        assert!(cache.get("a", at(1)).is_none());
        assert!(cache.get("b", at(1)).is_some());
        cache.forget_user("u1");
        assert!(cache.get("b", at(1)).is_none());
        assert!(cache.get("c", at(1)).is_some());
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_remembered() {
        let cache = SessionCache::new(1_000);
        let (session, user) = row("u1", "t1");
        let ticket = cache.ticket();
        // The read is in flight when the user signs out elsewhere on this instance.
        cache.forget_token("t1");
        cache.put(ticket, &session, &user, at(0));
        assert!(cache.get("t1", at(1)).is_none());
        cache.put(cache.ticket(), &session, &user, at(0));
        assert!(cache.get("t1", at(1)).is_some());
    }

    #[test]
    fn stays_bounded() {
        let cache = SessionCache::new(1_000);
        for i in 0..=MAX_ENTRIES {
            let (session, user) = row("u", &i.to_string());
            cache.put(cache.ticket(), &session, &user, at(0));
        }
        assert!(cache.inner().entries.len() <= MAX_ENTRIES);
        assert!(cache.get(&MAX_ENTRIES.to_string(), at(1)).is_some());
    }

    #[test]
    fn stays_bounded_in_bytes() {
        let cache = SessionCache::new(1_000);
        let (session, mut user) = row("u", "big-0");
        user.image = Some("x".repeat(MAX_BYTES / 4));
        for i in 0..8 {
            let session = Session {
                token: format!("big-{i}"),
                ..session.clone()
            };
            cache.put(cache.ticket(), &session, &user, at(0));
            let inner = cache.inner();
            assert!(inner.bytes <= MAX_BYTES, "{} bytes", inner.bytes);
            let counted: usize = inner.entries.values().map(Entry::size).sum();
            assert_eq!(inner.bytes, counted, "the running count matches");
        }
        cache.forget_user("u");
        assert_eq!(cache.inner().bytes, 0);
    }

    #[test]
    fn a_notice_from_another_process_forgets_what_it_names() {
        let cache = SessionCache::new(1_000);
        for (user, token) in [("u1", "a"), ("u2", "b"), ("u3", "c")] {
            let (session, user) = row(user, token);
            cache.put(cache.ticket(), &session, &user, at(0));
        }
        let ticket = cache.ticket();
        let payload = Notice::payload(&["u2".into()], &["a".into()]).expect("a change");
        assert!(
            !payload.contains("\"a\""),
            "no token in the payload: {payload}"
        );
        cache.apply_notice(&payload);
        assert!(cache.get("a", at(1)).is_none());
        assert!(cache.get("b", at(1)).is_none());
        assert!(cache.get("c", at(1)).is_some());
        // A read in flight when the notice came is not remembered.
        let (session, user) = row("u2", "b");
        cache.put(ticket, &session, &user, at(1));
        assert!(cache.get("b", at(2)).is_none());

        assert_eq!(Notice::payload(&[], &[]), None);
        let many: Vec<String> = (0..1000).map(|i| format!("token-{i}")).collect();
        let big = Notice::payload(&[], &many).expect("a change");
        assert_eq!(big, r#"{"all":true}"#);
        cache.apply_notice(&big);
        assert!(cache.get("c", at(1)).is_none());
        cache.put(cache.ticket(), &session, &user, at(1));
        cache.apply_notice("not json");
        assert!(cache.get("b", at(2)).is_none());
    }

    #[test]
    fn a_discard_leaves_reads_in_flight_alone() {
        let cache = SessionCache::new(1_000);
        let (session, user) = row("u1", "t1");
        let ticket = cache.ticket();
        cache.discard("dead");
        cache.put(ticket, &session, &user, at(0));
        assert!(cache.get("t1", at(1)).is_some());
    }
}
