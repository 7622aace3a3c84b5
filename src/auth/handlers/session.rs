//! `GET /get-session`, `GET /list-sessions`, `POST /revoke-session(s)`,
//! `POST /revoke-other-sessions` (spec §4, §6.4–6.8).

use crate::auth::SET_AUTH_JWT;
use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::{Session, SessionWithUser};
use crate::auth::render::{StatusBody, status_ok, with_cookies};
use crate::auth::service::session::{self as service, Lookup};
use crate::auth::state::{AuthState, Client, SignedIn};
use crate::platform::error::ErrorBody;
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    client: Client,
    query: web::Query<GetSessionQuery>,
) -> AuthResult<HttpResponse> {
    let mut res = HttpResponse::Ok();
    no_store(&mut res);
    let cookies = &state.cookies;
    let (no_cache, no_refresh) = (
        truthy(&query.disable_cookie_cache),
        truthy(&query.disable_refresh),
    );
    match service::get_session(&state, &client, no_cache, no_refresh).await? {
        Lookup::NoCookie => Ok(res.json(Value::Null)),
        Lookup::Gone => Ok(with_cookies(res, cookies.clear_session(), &Value::Null)),
        Lookup::Revoked => {
            let mut gone = HttpResponse::Unauthorized();
            no_store(&mut gone);
            Ok(with_cookies(gone, cookies.clear_session(), &Value::Null))
        }
        Lookup::Live {
            session,
            user,
            jwt,
            extended,
        } => {
            res.insert_header((SET_AUTH_JWT, jwt));
            let max_age = Some(state.auth().session.expires_in_secs);
            let cookie =
                extended.then(|| cookies.set(&cookies.session_token, &session.token, max_age));
            Ok(with_cookies(
                res,
                cookie,
                &SessionWithUser { session, user },
            ))
        }
    }
}

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
    let sessions = service::list_sessions(&state, &signed_in).await?;
    Ok(HttpResponse::Ok().json(sessions))
}

#[derive(ToSchema)]
pub struct RevokeSessionBody {
    token: String,
}

impl FromFields for RevokeSessionBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            token: f.string("token").unwrap_or_default(),
        }
    }
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
    let body = RevokeSessionBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let token = body.token;
    let own = service::revoke_session(&state, &signed_in, token).await?;
    let cookies = if own {
        state.cookies.clear_session().to_vec()
    } else {
        Vec::new()
    };
    Ok(with_cookies(
        HttpResponse::Ok(),
        cookies,
        &StatusBody { status: true },
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
    service::revoke_sessions(&state, &signed_in.user.id).await?;
    let cleared = state.cookies.clear_session();
    Ok(with_cookies(
        HttpResponse::Ok(),
        cleared,
        &StatusBody { status: true },
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
    service::revoke_other_sessions(&state, &signed_in).await?;
    Ok(status_ok())
}
