//! Reading, extending and revoking sessions (spec §4, §6.4–6.8).

use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::{Session, User};
use crate::auth::state::{AuthState, Client, SignedIn};
use crate::auth::store;
use crate::db::UserId;
use chrono::Duration;

/// What get-session found.
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per request"
)]
pub enum Lookup {
    /// No session cookie.
    NoCookie,
    /// The cookie names no session, or an expired one (now deleted): clear the cookies.
    Gone,
    /// Revoked between the read and the extension: `401 null`, clear the cookies.
    Revoked,
    /// A live session with the caller's JWT; `extended` when its cookie must be set again.
    Live {
        session: Session,
        user: User,
        jwt: String,
        extended: bool,
    },
}

/// The caller's session, extended once a day (`update_age`). A session read less than
/// `auth.session.cache_ttl_ms` ago is answered from memory (`auth::session_cache`) unless
/// `disable_cookie_cache`.
pub async fn get_session(
    state: &AuthState,
    client: &Client,
    disable_cookie_cache: bool,
    disable_refresh: bool,
) -> AuthResult<Lookup> {
    let Some(token) = client.session_token.clone() else {
        return Ok(Lookup::NoCookie);
    };
    let now = state.now();
    // Taken before anything is read: a change made meanwhile keeps what was read out of memory,
    // the extension below included.
    let ticket = state.sessions.ticket();
    // Better Auth's "read the database" switch also bypasses the in-memory cache.
    let cached = if disable_cookie_cache {
        None
    } else {
        state.sessions.get(&token, now)
    };
    let found = match cached {
        Some(found) => Some(found),
        None => {
            let lookup = token.clone();
            let found = state
                .db(move |conn| store::session_with_user(conn, &lookup))
                .await?;
            if let Some((session, user)) = &found {
                state.sessions.put(ticket, session, user, now);
            }
            found
        }
    };
    let (session, user) = match found {
        Some((session, user)) if session.expires_at >= now => (session, user),
        found => {
            state.sessions.discard(&token);
            if found.is_some() {
                // Expired: forget it for good.
                state
                    .write(move |w| w.delete_session_by_token(&token))
                    .await?;
            }
            return Ok(Lookup::Gone);
        }
    };
    client.record_user_id(&user.id);

    let policy = &state.auth().session;
    let expires_in = Duration::seconds(policy.expires_in_secs);
    let due = session.expires_at - expires_in + Duration::seconds(policy.update_age_secs) <= now;
    let jwt = state.jwt_for(&user, now).await?;
    if client.dont_remember || disable_refresh || !due {
        return Ok(Lookup::Live {
            session,
            user,
            jwt,
            extended: false,
        });
    }
    let id = session.id.clone();
    let session = state
        .write(move |w| w.extend_session(&id, now + expires_in, now))
        .await?;
    let Some(session) = session else {
        // Revoked since it was read (by another request, or another instance within the
        // cache's TTL): Better Auth answers this `401 null` and clears the cookies.
        state.sessions.discard(&token);
        return Ok(Lookup::Revoked);
    };
    state.sessions.put(ticket, &session, &user, now);
    Ok(Lookup::Live {
        session,
        user,
        jwt,
        extended: true,
    })
}

/// The caller's unexpired sessions. Needs a fresh session (younger than `fresh_age`).
pub async fn list_sessions(state: &AuthState, signed_in: &SignedIn) -> AuthResult<Vec<Session>> {
    if !state.is_fresh(&signed_in.session) {
        return Err(AuthError::forbidden(Code::SessionNotFresh));
    }
    let now = state.now();
    let user_id = signed_in.user.id.clone();
    state
        .db(move |conn| store::active_sessions(conn, &user_id, now))
        .await
}

/// Revokes one of the caller's sessions by token; someone else's changes nothing. True when it
/// was the caller's own current session.
pub async fn revoke_session(
    state: &AuthState,
    signed_in: &SignedIn,
    token: String,
) -> AuthResult<bool> {
    let own = token == signed_in.session.token;
    let user_id = signed_in.user.id.clone();
    state
        .write(move |w| w.delete_own_session(&user_id, &token))
        .await?;
    Ok(own)
}

/// Revokes every session of the user.
pub async fn revoke_sessions(state: &AuthState, user_id: &UserId) -> AuthResult<()> {
    let user_id = user_id.to_owned();
    state.write(move |w| w.delete_sessions_of(&user_id)).await?;
    Ok(())
}

/// Revokes every other unexpired session of the caller.
pub async fn revoke_other_sessions(state: &AuthState, signed_in: &SignedIn) -> AuthResult<()> {
    let now = state.now();
    let (user_id, keep) = (signed_in.user.id.clone(), signed_in.session.token.clone());
    state
        .write(move |w| w.delete_other_sessions(&user_id, &keep, now))
        .await?;
    Ok(())
}
