//! Queries on the auth tables. Each takes `&mut PgConnection`, so a service can compose several
//! inside one transaction.
//!
//! Writes to `session` and `user` rows are private to this module and reachable only through a
//! [`Writer`], which records what `get-session`'s cache must forget as part of each write;
//! `AuthState::write` forgets it once the work has committed. So no handler can change a session
//! or a user and leave a stale answer in memory (a test in this module keeps writes to those
//! tables from appearing anywhere else).

mod accounts;
mod verifications;

pub use accounts::*;
pub use verifications::*;

use crate::auth::models::*;
use crate::auth::session_cache::SessionCache;
use crate::db::schema::{account, session, user};
use crate::db::{SessionId, UserId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

pub fn user_by_email(conn: &mut PgConnection, email: &str) -> QueryResult<Option<User>> {
    user::table
        .filter(user::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional()
}

fn insert_user(conn: &mut PgConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(user::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
}

fn insert_session(conn: &mut PgConnection, new: &NewSession<'_>) -> QueryResult<Session> {
    diesel::insert_into(session::table)
        .values(new)
        .returning(Session::as_returning())
        .get_result(conn)
}

/// The session with this token and its user, in one indexed query.
pub fn session_with_user(
    conn: &mut PgConnection,
    token: &str,
) -> QueryResult<Option<(Session, User)>> {
    session::table
        .inner_join(user::table)
        .filter(session::token.eq(token))
        .select((Session::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

fn extend_session(
    conn: &mut PgConnection,
    id: &SessionId,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<Option<Session>> {
    diesel::update(session::table.find(id))
        .set((
            session::expires_at.eq(expires_at),
            session::updated_at.eq(now),
        ))
        .returning(Session::as_returning())
        .get_result(conn)
        .optional()
}

fn delete_session_by_token(conn: &mut PgConnection, token: &str) -> QueryResult<usize> {
    diesel::delete(session::table.filter(session::token.eq(token))).execute(conn)
}

/// Deletes the session with `token` only if it belongs to `user_id`.
fn delete_own_session(
    conn: &mut PgConnection,
    user_id: &UserId,
    token: &str,
) -> QueryResult<usize> {
    diesel::delete(
        session::table
            .filter(session::token.eq(token))
            .filter(session::user_id.eq(user_id)),
    )
    .execute(conn)
}

fn delete_sessions_of(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(session::table.filter(session::user_id.eq(user_id))).execute(conn)
}

fn delete_other_sessions(
    conn: &mut PgConnection,
    user_id: &UserId,
    keep_token: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(
        session::table
            .filter(session::user_id.eq(user_id))
            .filter(session::token.ne(keep_token))
            .filter(session::expires_at.gt(now)),
    )
    .execute(conn)
}

pub fn active_sessions(
    conn: &mut PgConnection,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Session>> {
    session::table
        .filter(session::user_id.eq(user_id))
        .filter(session::expires_at.gt(now))
        .select(Session::as_select())
        .order(session::created_at.asc())
        .load(conn)
}

fn update_profile(
    conn: &mut PgConnection,
    user_id: &UserId,
    changes: &ProfileUpdate<'_>,
) -> QueryResult<User> {
    diesel::update(user::table.find(user_id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(conn)
}

fn update_email(
    conn: &mut PgConnection,
    user_id: &UserId,
    email: &str,
    verified: bool,
    now: DateTime<Utc>,
) -> QueryResult<User> {
    diesel::update(user::table.find(user_id))
        .set((
            user::email.eq(email),
            user::email_verified.eq(verified),
            user::updated_at.eq(now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
}

/// Deletes the user; sessions and accounts go with it (ON DELETE CASCADE, and explicitly first,
/// as Better Auth does, so an adopted database without the cascade behaves the same).
fn delete_user(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<usize> {
    conn.transaction(|conn| {
        diesel::delete(session::table.filter(session::user_id.eq(user_id))).execute(conn)?;
        diesel::delete(account::table.filter(account::user_id.eq(user_id))).execute(conn)?;
        diesel::delete(user::table.find(user_id)).execute(conn)
    })
}

pub fn user_by_id(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<Option<User>> {
    user::table
        .find(user_id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Marks the user's email verified, if it was not, and drops what could belong to someone
/// else: every social link (they were all made while the email was unverified, since nothing
/// here ever turns `email_verified` back to false) and, when there were any, every session.
/// Returns the user when this call verified them.
fn verify_email(
    conn: &mut PgConnection,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> QueryResult<Option<User>> {
    conn.transaction(|conn| {
        let verified: Option<User> = diesel::update(
            user::table
                .find(user_id)
                .filter(user::email_verified.eq(false)),
        )
        .set((user::email_verified.eq(true), user::updated_at.eq(now)))
        .returning(User::as_returning())
        .get_result(conn)
        .optional()?;
        if verified.is_some() {
            drop_social_links(conn, user_id)?;
        }
        Ok(verified)
    })
}

/// Ownership of an unverified user's address was proven another way (a completed password
/// reset): drop their social links and, when there were any, their sessions, as
/// [`verify_email`] does. A verified user keeps everything. Returns the links dropped.
fn drop_links_of_unverified(conn: &mut PgConnection, user: &User) -> QueryResult<usize> {
    if user.email_verified {
        return Ok(0);
    }
    drop_social_links(conn, &user.id)
}

fn drop_social_links(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<usize> {
    let dropped = diesel::delete(
        account::table
            .filter(account::user_id.eq(user_id))
            .filter(account::provider_id.ne(CREDENTIAL)),
    )
    .execute(conn)?;
    if dropped > 0 {
        tracing::warn!(
            user_id = %user_id,
            dropped,
            "social links made while the email was unverified dropped; sessions revoked"
        );
        delete_sessions_of(conn, user_id)?;
    }
    Ok(dropped)
}

/// Locks the user's row until the transaction ends: decisions that count a user's accounts
/// (unlink never removes the last one) run one at a time per user, so two concurrent unlinks of
/// a user's two accounts cannot both see "two left".
pub fn lock_user(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<bool> {
    crate::db::schema::user::table
        .find(user_id)
        .select(crate::db::schema::user::id)
        .for_update()
        .first::<String>(conn)
        .optional()
        .map(|found| found.is_some())
}

/// Whether the session with this id still exists, is unexpired and belongs to `user_id`.
pub fn session_alive(
    conn: &mut PgConnection,
    session_id: &SessionId,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        session::table
            .filter(session::id.eq(session_id))
            .filter(session::user_id.eq(user_id))
            .filter(session::expires_at.gt(now)),
    ))
    .get_result(conn)
}

/// What a [`Writer`] must make get-session's cache forget.
#[derive(Debug, Default)]
pub struct Forget {
    users: Vec<String>,
    tokens: Vec<String>,
}

impl Forget {
    /// The users and session tokens recorded (announced to other processes).
    pub fn parts(&self) -> (&[String], &[String]) {
        (&self.users, &self.tokens)
    }

    /// Forgets everything recorded. Runs after the write committed (or failed: forgetting more
    /// than needed only costs a database read).
    pub fn apply(self, cache: &SessionCache) {
        for user in &self.users {
            cache.forget_user(user);
        }
        for token in &self.tokens {
            cache.forget_token(token);
        }
    }
}

/// The only way to write `session` and `user` rows: each method records what the session cache
/// must forget before it writes. Reads, and writes to other tables, use [`Writer::conn`].
pub struct Writer<'c> {
    conn: &'c mut PgConnection,
    forget: Forget,
}

impl<'c> Writer<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self {
            conn,
            forget: Forget::default(),
        }
    }

    /// What to forget once the work is done.
    pub fn into_forget(self) -> Forget {
        self.forget
    }

    /// The connection, for reads and for tables the cache does not hold.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Runs `f` in a transaction; what it records is kept whether it commits or not.
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        let forget = &mut self.forget;
        self.conn.transaction(|conn| {
            let mut inner = Writer {
                conn,
                forget: std::mem::take(forget),
            };
            let out = f(&mut inner);
            *forget = inner.forget;
            out
        })
    }

    fn user_changes(&mut self, user_id: &UserId) {
        self.forget.users.push(user_id.as_str().to_owned());
    }

    fn token_changes(&mut self, token: &str) {
        self.forget.tokens.push(token.to_owned());
    }

    /// A new user: nothing of them can be remembered yet.
    pub fn insert_user(&mut self, new: &NewUser<'_>) -> QueryResult<User> {
        insert_user(self.conn, new)
    }

    /// A new session: its token cannot be remembered yet.
    pub fn insert_session(&mut self, new: &NewSession<'_>) -> QueryResult<Session> {
        insert_session(self.conn, new)
    }

    /// Lengthens a session; forgets nothing. get-session, the one caller, remembers the result
    /// with the ticket it took before reading, which any other change since invalidates; an
    /// entry with the earlier expiry left elsewhere only makes that entry end sooner.
    pub fn extend_session(
        &mut self,
        id: &SessionId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Session>> {
        extend_session(self.conn, id, expires_at, now)
    }

    pub fn delete_session_by_token(&mut self, token: &str) -> QueryResult<usize> {
        self.token_changes(token);
        delete_session_by_token(self.conn, token)
    }

    /// Deletes the session with `token` only if it belongs to `user_id`.
    pub fn delete_own_session(&mut self, user_id: &UserId, token: &str) -> QueryResult<usize> {
        self.token_changes(token);
        delete_own_session(self.conn, user_id, token)
    }

    pub fn delete_sessions_of(&mut self, user_id: &UserId) -> QueryResult<usize> {
        self.user_changes(user_id);
        delete_sessions_of(self.conn, user_id)
    }

    pub fn delete_other_sessions(
        &mut self,
        user_id: &UserId,
        keep_token: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<usize> {
        self.user_changes(user_id);
        delete_other_sessions(self.conn, user_id, keep_token, now)
    }

    pub fn update_profile(
        &mut self,
        user_id: &UserId,
        changes: &ProfileUpdate<'_>,
    ) -> QueryResult<User> {
        self.user_changes(user_id);
        update_profile(self.conn, user_id, changes)
    }

    pub fn update_email(
        &mut self,
        user_id: &UserId,
        email: &str,
        verified: bool,
        now: DateTime<Utc>,
    ) -> QueryResult<User> {
        self.user_changes(user_id);
        update_email(self.conn, user_id, email, verified, now)
    }

    /// Marks the user verified (a provider vouched for the same address).
    pub fn mark_email_verified(
        &mut self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> QueryResult<User> {
        self.user_changes(user_id);
        diesel::update(user::table.find(user_id))
            .set((user::email_verified.eq(true), user::updated_at.eq(now)))
            .returning(User::as_returning())
            .get_result(self.conn)
    }

    pub fn delete_user(&mut self, user_id: &UserId) -> QueryResult<usize> {
        self.user_changes(user_id);
        delete_user(self.conn, user_id)
    }

    /// See [`verify_email`].
    pub fn verify_email(
        &mut self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<User>> {
        self.user_changes(user_id);
        verify_email(self.conn, user_id, now)
    }

    /// See [`drop_links_of_unverified`].
    pub fn drop_links_of_unverified(&mut self, user: &User) -> QueryResult<usize> {
        self.user_changes(&user.id);
        drop_links_of_unverified(self.conn, user)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The session cache stays right only if every write to `session` and `user` goes through
    /// [`super::Writer`]: no other file may write those tables, in diesel or in SQL.
    #[test]
    fn only_this_module_writes_sessions_and_users() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        let patterns = [
            "(user::table",
            "(session::table",
            "(schema::user::table",
            "(schema::session::table",
            "update \"user\"",
            "insert into \"user\"",
            "delete from \"user\"",
            "update session",
            "insert into session",
            "delete from session",
        ];
        let writes = ["update", "insert_into", "delete"];
        let mut found = Vec::new();
        for file in files {
            let rel = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == "auth/store/mod.rs" || rel == "db/schema.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
            // SQL in string literals: `\"user\"` reads as `"user"`.
            let squashed: String = text
                .replace('\\', "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            for p in patterns {
                let hit = if p.starts_with('(') {
                    writes.iter().any(|w| {
                        compact.contains(&format!("diesel::{w}{p}"))
                            || compact.contains(&format!("{w}{p}"))
                    })
                } else {
                    squashed.contains(p)
                };
                if hit {
                    found.push(format!("{rel}: {p}"));
                }
            }
        }
        assert!(
            found.is_empty(),
            "session/user writes outside auth/store/mod.rs: {found:?}"
        );
    }
}
