//! `POST /send-verification-email` and `GET /verify-email` (spec §6.16, §6.17, §8.1).

use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::links::set_search_param;
use crate::auth::models::User;
use crate::auth::render::{redirect, with_cookies};
use crate::auth::service::verification::{self as service, SignIn, Verified};
use crate::auth::state::{AuthState, Client};
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(ToSchema)]
pub struct SendVerificationBody {
    email: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
}

impl FromFields for SendVerificationBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.email("email").unwrap_or_default(),
            callback_url: f.opt_string("callbackURL"),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatusOnly {
    status: bool,
}

/// Mails a verification link. Without a session the answer is always the same (and never
/// quicker than `anonymous_min_response_ms`), so it does not tell who has an account.
#[utoipa::path(post, path = "/api/auth/send-verification-email", tag = "auth",
    request_body = SendVerificationBody,
    responses(
        (status = 200, description = "Sent, or nothing to send (not revealed without a session)", body = StatusOnly),
        (status = 400, description = "VALIDATION_ERROR, VERIFICATION_EMAIL_NOT_ENABLED, EMAIL_MISMATCH, EMAIL_ALREADY_VERIFIED", body = ErrorBody),
        (status = 403, description = "Untrusted origin or callbackURL", body = ErrorBody)))]
pub async fn send_verification_email(
    state: web::Data<AuthState>,
    req: HttpRequest,
    client: Client,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let started = tokio::time::Instant::now();
    let body = SendVerificationBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let (email, callback_url) = (body.email, body.callback_url);
    let state = state.into_inner();
    service::send_verification_email(state, &client, started, email, callback_url).await?;
    Ok(HttpResponse::Ok().json(StatusOnly { status: true }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyEmailQuery {
    /// The emailed token (an HS256 JWT).
    token: Option<String>,
    /// Where the browser goes afterwards; errors add `?error=CODE`.
    #[serde(rename = "callbackURL")]
    #[param(rename = "callbackURL")]
    callback_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifiedBody {
    status: bool,
    /// The updated user after a change of email; `null` otherwise.
    user: Option<User>,
    /// `SIGNED_IN_AS_ANOTHER_USER` when auto sign-in kept the caller's session of another user.
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<&'static str>,
}

/// Verifies an email address (or completes a change of email) from the emailed link.
#[utoipa::path(get, path = "/api/auth/verify-email", tag = "auth", params(VerifyEmailQuery),
    responses(
        (status = 200, description = "Verified (no callbackURL)", body = VerifiedBody),
        (status = 302, description = "Verified, or failed with `?error=CODE`, when there is a callbackURL; `?notice=SIGNED_IN_AS_ANOTHER_USER` when auto sign-in kept the browser's session of another user"),
        (status = 400, description = "VALIDATION_ERROR: no token", body = ErrorBody),
        (status = 401, description = "INVALID_TOKEN, TOKEN_EXPIRED, USER_NOT_FOUND, INVALID_USER (no callbackURL)", body = ErrorBody),
        (status = 403, description = "Untrusted callbackURL", body = ErrorBody)))]
pub async fn verify_email(
    state: web::Data<AuthState>,
    client: Client,
    query: web::Query<VerifyEmailQuery>,
) -> AuthResult<HttpResponse> {
    let query = query.into_inner();
    let Some(token) = query.token else {
        return Err(AuthError::validation(
            "query.token",
            "Invalid input: expected string, received undefined",
        ));
    };
    let callback = query.callback_url.filter(|c| !c.is_empty());
    state
        .origins
        .check_url(callback.as_deref(), Code::InvalidCallbackUrl)?;
    let verified = service::verify_email(&state, &client, &token).await?;
    let (sign_in, user, notice) = match verified {
        Verified::Done {
            sign_in,
            user,
            notice,
        } => (sign_in, user, notice),
        // Better Auth's `redirectOnError`: to the callback with `?error=`, else 401.
        Verified::Failed(code) => match &callback {
            Some(cb) => return Ok(redirect(&set_search_param(cb, "error", code.as_str()), [])),
            None => return Err(AuthError::unauthorized(code)),
        },
    };
    let cookies = sign_in_cookies(&state, &client, sign_in);
    Ok(match (&callback, notice) {
        (Some(cb), Some(notice)) => redirect(&set_search_param(cb, "notice", notice), cookies),
        (Some(cb), None) => redirect(cb, cookies),
        (None, notice) => {
            let body = VerifiedBody {
                status: true,
                user,
                notice,
            };
            with_cookies(HttpResponse::Ok(), cookies, &body)
        }
    })
}

/// The cookies a verification sets: none, the signed-in session's again, or a new session's.
fn sign_in_cookies(state: &AuthState, client: &Client, sign_in: SignIn) -> Vec<String> {
    match sign_in {
        SignIn::None => Vec::new(),
        SignIn::Reissue(signed_in) => vec![state.reissue_cookie(&signed_in)],
        SignIn::Started(session) => state.session_cookies(&session.token, true, client),
    }
}
