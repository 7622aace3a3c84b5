//! What the handlers share to render an answer: bodies several endpoints return, cookies on a
//! JSON answer, Better Auth's redirect.

use crate::auth::models::{Session, User};
use crate::auth::state::{AuthState, Client};
use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct TokenAndUser {
    /// The new session's token; `null` when no session was started.
    pub token: Option<String>,
    pub user: User,
}

#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    pub status: bool,
}

/// `{"status": true}`.
pub fn status_ok() -> HttpResponse {
    HttpResponse::Ok().json(StatusBody { status: true })
}

/// `{token, user}`, with the session's cookies when a session was started (sign-up, and
/// change-password when it signs out everywhere else).
pub fn token_and_user(
    state: &AuthState,
    client: &Client,
    user: User,
    session: Option<Session>,
    remember: bool,
) -> HttpResponse {
    let Some(session) = session else {
        return HttpResponse::Ok().json(TokenAndUser { token: None, user });
    };
    let cookies = state.session_cookies(&session.token, remember, client);
    with_cookies(
        HttpResponse::Ok(),
        cookies,
        &TokenAndUser {
            token: Some(session.token),
            user,
        },
    )
}

/// A JSON response carrying `Set-Cookie` headers, in order.
pub fn with_cookies(
    mut builder: HttpResponseBuilder,
    cookies: impl IntoIterator<Item = String>,
    body: &impl Serialize,
) -> HttpResponse {
    for cookie in cookies {
        builder.append_header((header::SET_COOKIE, cookie));
    }
    builder.json(body)
}

/// Better Auth's `ctx.redirect`: 302 with `Location`, `content-type: application/json` and an
/// empty body, plus any `Set-Cookie` headers.
pub fn redirect(location: &str, cookies: impl IntoIterator<Item = String>) -> HttpResponse {
    let mut builder = HttpResponse::Found();
    builder
        .insert_header((header::LOCATION, location))
        .insert_header((header::CONTENT_TYPE, "application/json"));
    for cookie in cookies {
        builder.append_header((header::SET_COOKIE, cookie));
    }
    builder.finish()
}
