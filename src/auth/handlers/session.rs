//! `GET /get-session`, `GET /list-sessions`, `POST /revoke-session(s)`,
//! `POST /revoke-other-sessions` (spec §4, §6.4–6.8).

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::with_cookies;
use crate::auth::models::{Session, SessionWithUser};
use crate::auth::state::{AuthState, SignedIn};
use crate::auth::store;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct GetSessionQuery {
    /// Any non-empty value means true (zod's coerced boolean): do not extend the session.
    disable_refresh: Option<String>,
    /// Any non-empty value means true: read the session from the database, not from the
    /// second-long in-memory cache.
    disable_cookie_cache: Option<String>,
}

/// zod's coerced boolean: any non-empty value is true, `"false"` included.
fn truthy(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

fn no_store(builder: &mut actix_web::HttpResponseBuilder) {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
}

/// The caller's session and user, or `null`. Extends the session once a day. A session read
/// less than `auth.session.cache_ttl_ms` ago is answered from memory (`auth::session_cache`).
#[utoipa::path(get, path = "/api/auth/get-session", tag = "auth", params(GetSessionQuery),
    responses((status = 200, description = "`{session, user}`, or `null` without a valid session", body = Option<SessionWithUser>)))]
pub async fn get_session(
    state: web::Data<AuthState>,
    req: HttpRequest,
    query: web::Query<GetSessionQuery>,
) -> AuthResult<HttpResponse> {
    let mut res = HttpResponse::Ok();
    no_store(&mut res);
    let cookies = &state.cookies;
    let Some(token) = cookies.read_signed(&req, &cookies.session_token) else {
        return Ok(res.json(Value::Null));
    };
    let now = state.now();
    // Taken before anything is read: a change made meanwhile keeps what was read out of memory,
    // the extension below included.
    let ticket = state.sessions.ticket();
    // Better Auth's "read the database" switch also bypasses the in-memory cache.
    let cached = if truthy(&query.disable_cookie_cache) {
        None
    } else {
        state.sessions.get(&token, now)
    };
    let found = match cached {
        Some(found) => Some(found),
        None => {
            let lookup = token.clone();
            let found = state
                .db(move |conn| store::session_with_user(conn, &lookup).map_err(DbError::from))
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
                    .write(move |w| w.delete_session_by_token(&token).map_err(DbError::from))
                    .await?;
            }
            return Ok(with_cookies(res, cookies.clear_session(), &Value::Null));
        }
    };
    crate::platform::telemetry::record_user_id(&req, &user.id);

    let disable_refresh = truthy(&query.disable_refresh);
    let dont_remember = cookies.read_signed(&req, &cookies.dont_remember).is_some();
    let policy = &state.auth().session;
    let expires_in = Duration::seconds(policy.expires_in_secs);
    let due = session.expires_at - expires_in + Duration::seconds(policy.update_age_secs) <= now;
    let jwt = state.jwt_for(&user, now).await?;
    if dont_remember || disable_refresh || !due {
        res.insert_header((SET_AUTH_JWT, jwt));
        return Ok(res.json(SessionWithUser { session, user }));
    }
    let id = session.id.clone();
    let session = state
        .write(move |w| {
            w.extend_session(&id, now + expires_in, now)
                .map_err(DbError::from)
        })
        .await?;
    let Some(session) = session else {
        // Revoked since it was read (by another request, or another instance within the
        // cache's TTL): Better Auth answers this `401 null` and clears the cookies.
        state.sessions.discard(&token);
        let mut gone = HttpResponse::Unauthorized();
        no_store(&mut gone);
        return Ok(with_cookies(gone, cookies.clear_session(), &Value::Null));
    };
    res.insert_header((SET_AUTH_JWT, jwt));
    state.sessions.put(ticket, &session, &user, now);
    let cookie = cookies.set(
        &cookies.session_token,
        &session.token,
        Some(policy.expires_in_secs),
    );
    Ok(with_cookies(
        res,
        [cookie],
        &SessionWithUser { session, user },
    ))
}

/// The JWT plugin's header on every get-session that returns a session.
const SET_AUTH_JWT: &str = "set-auth-jwt";

#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    /// A JWT for the caller, verifiable with the JWKS.
    token: String,
}

/// A fresh JWT for the signed-in caller (Better Auth's JWT plugin).
#[utoipa::path(get, path = "/api/auth/token", tag = "auth",
    responses(
        (status = 200, description = "A JWT signed with the current key", body = TokenBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn token(state: web::Data<AuthState>, signed_in: SignedIn) -> AuthResult<HttpResponse> {
    let token = state.jwt_for(&signed_in.user, state.now()).await?;
    Ok(HttpResponse::Ok().json(TokenBody { token }))
}

/// Better Auth answers POST only with `deferSessionRefresh`, which switchboard does not offer.
pub async fn post_get_session() -> AuthResult<HttpResponse> {
    Err(AuthError::Api(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowedDeferSessionRequired,
    ))
}

/// The caller's unexpired sessions. Needs a fresh session (younger than `fresh_age`).
#[utoipa::path(get, path = "/api/auth/list-sessions", tag = "auth",
    responses(
        (status = 200, description = "Every unexpired session of the caller", body = Vec<Session>),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "SESSION_NOT_FRESH", body = ErrorBody)))]
pub async fn list_sessions(
    state: web::Data<AuthState>,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    if !state.is_fresh(&signed_in.session) {
        return Err(AuthError::forbidden(Code::SessionNotFresh));
    }
    let now = state.now();
    let user_id = signed_in.user.id;
    let sessions = state
        .db(move |conn| store::active_sessions(conn, &user_id, now).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok().json(sessions))
}

#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    status: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeSessionBody {
    token: String,
}

/// Revokes one of the caller's sessions by token; someone else's token changes nothing.
#[utoipa::path(post, path = "/api/auth/revoke-session", tag = "auth", request_body = RevokeSessionBody,
    responses(
        (status = 200, description = "Revoked (or not the caller's: nothing to do)", body = StatusBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn revoke_session(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let token = f.string("token");
    f.finish()?;
    let Some(token) = token else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    let own = token == signed_in.session.token;
    let user_id = signed_in.user.id;
    state
        .write(move |w| {
            w.delete_own_session(&user_id, &token)
                .map_err(DbError::from)
        })
        .await?;
    let cookies = if own {
        state.cookies.clear_session().to_vec()
    } else {
        Vec::new()
    };
    Ok(with_cookies(
        HttpResponse::Ok(),
        cookies,
        &json!({"status": true}),
    ))
}

/// Revokes every session of the caller, this one included.
#[utoipa::path(post, path = "/api/auth/revoke-sessions", tag = "auth",
    responses(
        (status = 200, description = "All sessions revoked; cookies cleared", body = StatusBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn revoke_sessions(
    state: web::Data<AuthState>,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let user_id = signed_in.user.id;
    state
        .write(move |w| w.delete_sessions_of(&user_id).map_err(DbError::from))
        .await?;
    Ok(with_cookies(
        HttpResponse::Ok(),
        state.cookies.clear_session(),
        &json!({"status": true}),
    ))
}

/// Revokes every other unexpired session of the caller.
#[utoipa::path(post, path = "/api/auth/revoke-other-sessions", tag = "auth",
    responses(
        (status = 200, description = "Other sessions revoked", body = StatusBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn revoke_other_sessions(
    state: web::Data<AuthState>,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let now = state.now();
    let (user_id, keep) = (signed_in.user.id, signed_in.session.token);
    state
        .write(move |w| {
            w.delete_other_sessions(&user_id, &keep, now)
                .map_err(DbError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"status": true})))
}
