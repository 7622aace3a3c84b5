//! `POST /send-verification-email` and `GET /verify-email` (spec §6.16, §6.17, §8.1), and the
//! verification mail that sign-up, sign-in and change-email send.

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::email_token::{self, CHANGE_EMAIL_VERIFICATION, TokenError};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::{redirect, with_cookies};
use crate::auth::links::{encode_uri_component, set_search_param};
use crate::auth::models::{NewVerification, User};
use crate::auth::state::{AuthState, request_id};
use crate::auth::store;
use crate::crypto::random;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::Connection;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// `verification.identifier` of the row that keeps a change-email token single use.
fn change_email_identifier(jti: &str) -> String {
    format!("change-email:{jti}")
}

/// `BETTER_AUTH_URL` origin + `/api/auth/verify-email?token=…&callbackURL=…` (`callbackURL`
/// defaults to `/`, as Better Auth's does).
fn verify_link(state: &AuthState, token: &str, callback_url: Option<&str>) -> String {
    let callback = callback_url.filter(|c| !c.is_empty()).unwrap_or("/");
    format!(
        "{}/verify-email?token={token}&callbackURL={}",
        state.base_api_url(),
        encode_uri_component(callback)
    )
}

/// Mails a link that verifies `email`, the user's address. Returns at once; the mail goes out
/// in the background.
pub(crate) fn mail_verification(
    state: &AuthState,
    req: &HttpRequest,
    user: &User,
    email: &str,
    callback_url: Option<&str>,
) {
    let expires_in = state.auth().email_verification.expires_in_secs;
    let token = email_token::issue(state.secret(), email, &user.id, state.now(), expires_in);
    let user = User {
        email: email.to_owned(),
        ..user.clone()
    };
    let mail = verification_email(state, &user, &token, callback_url);
    state.mailer.send(mail, request_id(req));
}

/// The one place a verification mail is made (the mailer sends it).
fn verification_email(
    state: &AuthState,
    user: &User,
    token: &str,
    callback_url: Option<&str>,
) -> crate::auth::mail::Email {
    let expires_in = state.auth().email_verification.expires_in_secs;
    let link = verify_link(state, token, callback_url);
    state
        .mailer
        .templates
        .verification(&user.email, &user.name, &link, expires_in)
}

/// Mails the change-email link to `new_email`: following it moves the account from its current
/// address to `new_email`. The link works once: its `jti` names a `verification` row that
/// following it consumes (Better Auth's stateless token would work again after the user changed
/// the address away and back).
pub(crate) async fn mail_change_email(
    state: &AuthState,
    req: &HttpRequest,
    user: &User,
    new_email: &str,
    callback_url: Option<&str>,
) -> AuthResult<()> {
    let expires_in = state.auth().email_verification.expires_in_secs;
    let now = state.now();
    let jti = random::id();
    let (row_id, identifier, user_id) =
        (random::id(), change_email_identifier(&jti), user.id.clone());
    let expires_at = now + chrono::Duration::seconds(expires_in);
    let token = email_token::issue_change_email(
        state.secret(),
        &user.email,
        new_email,
        &user.id,
        &jti,
        now,
        expires_in,
    );
    let link = verify_link(state, &token, callback_url);
    let message = state
        .mailer
        .templates
        .change_email(new_email, &user.name, &link, expires_in);
    let mailer = state.mailer.clone();
    let rid = request_id(req);
    // The single-use row and its mail commit together.
    state
        .db(move |conn| {
            conn.transaction::<_, DbError, _>(|conn| {
                store::insert_verification(
                    conn,
                    &NewVerification {
                        id: &row_id,
                        identifier: &identifier,
                        value: &user_id,
                        expires_at,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                mailer.enqueue_in(conn, now, &message, rid.as_deref())
            })
        })
        .await?;
    state.mailer.wake();
    Ok(())
}

/// Tells the OLD address that the account's email changed (both change-email flows).
pub(crate) fn mail_email_changed(
    state: &AuthState,
    req: &HttpRequest,
    before: &User,
    after: &User,
) {
    let link = format!("{}/", state.origins.base_origin());
    let message =
        state
            .mailer
            .templates
            .email_changed(&before.email, &after.name, &after.email, &link);
    state.mailer.send(message, request_id(req));
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SendVerificationBody {
    email: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
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
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let started = tokio::time::Instant::now();
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let email = f.email("email");
    let callback_url = f.opt_string("callbackURL");
    f.finish()?;
    let Some(email) = email.map(|e| e.to_lowercase()) else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    if !state.auth().email_verification.enabled {
        return Err(AuthError::bad_request(Code::VerificationEmailNotEnabled));
    }
    let ok = || HttpResponse::Ok().json(StatusOnly { status: true });

    if let Some(signed_in) = state.current_session(&req).await? {
        let user = signed_in.user;
        if user.email != email {
            return Err(AuthError::bad_request(Code::EmailMismatch));
        }
        if user.email_verified {
            return Err(AuthError::bad_request(Code::EmailAlreadyVerified));
        }
        mail_verification(&state, &req, &user, &user.email, callback_url.as_deref());
        return Ok(ok());
    }

    // Without a session, known and unknown addresses take the same path up to the answer:
    // the look-up and the mail happen in the background, after it.
    // Everything that depends on the address (the look-up, and for a known one the token and
    // the message) runs on the blocking pool; the worker only hands the result to the mailer.
    let request_id = request_id(&req);
    let state = state.into_inner();
    let background = state.clone();
    actix_web::rt::spawn(async move {
        // Let the answer go out first: the known address's extra work must not delay it.
        tokio::task::yield_now().await;
        let state = background.clone();
        let rid = request_id.clone();
        let queued = state
            .db(move |conn| {
                let user = store::user_by_email(conn, &email).map_err(DbError::from)?;
                let Some(user) = user.filter(|u| !u.email_verified) else {
                    return Ok(false);
                };
                let now = background.now();
                let token = email_token::issue(
                    background.secret(),
                    &user.email,
                    &user.id,
                    now,
                    background.auth().email_verification.expires_in_secs,
                );
                let mail = verification_email(&background, &user, &token, callback_url.as_deref());
                background
                    .mailer
                    .enqueue_in(conn, now, &mail, rid.as_deref())?;
                Ok(true)
            })
            .await;
        match queued {
            Ok(true) => state.mailer.wake(),
            Ok(false) => {}
            Err(error) => tracing::error!(
                request_id = request_id.as_deref().unwrap_or("-"),
                %error,
                "looking up the address for a verification mail failed"
            ),
        }
    });
    // Real time, not the injected clock: this bounds what a client can measure.
    let floor = Duration::from_millis(state.auth().email_verification.anonymous_min_response_ms);
    if !floor.is_zero() {
        tokio::time::sleep_until(started + floor).await;
    }
    Ok(ok())
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
    req: HttpRequest,
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
    // Better Auth's `redirectOnError`: to the callback with `?error=`, else 401.
    let fail = |code: Code| -> AuthResult<HttpResponse> {
        match &callback {
            Some(cb) => Ok(redirect(&set_search_param(cb, "error", code.as_str()), [])),
            None => Err(AuthError::unauthorized(code)),
        }
    };
    let done =
        |cookies: Vec<String>, user: Option<User>, notice: Option<&'static str>| match &callback {
            Some(cb) => match notice {
                Some(notice) => redirect(&set_search_param(cb, "notice", notice), cookies),
                None => redirect(cb, cookies),
            },
            None => with_cookies(
                HttpResponse::Ok(),
                cookies,
                &VerifiedBody {
                    status: true,
                    user,
                    notice,
                },
            ),
        };

    let claims = match email_token::verify(state.secret(), &token, state.now()) {
        Ok(claims) => claims,
        Err(TokenError::Expired) => return fail(Code::TokenExpired),
        Err(TokenError::Invalid) => return fail(Code::InvalidToken),
    };
    let lookup = claims.email.clone();
    let user = state
        .db(move |conn| store::user_by_email(conn, &lookup).map_err(DbError::from))
        .await?;
    let Some(user) = user else {
        return fail(Code::UserNotFound);
    };
    // Tokens from older Better Auth versions carry no userId; those that do must match.
    if claims.user_id.as_deref().is_some_and(|id| id != user.id) {
        return fail(Code::InvalidToken);
    }

    if let Some(new_email) = claims.update_to {
        if claims.request_type.as_deref() != Some(CHANGE_EMAIL_VERIFICATION) {
            // Change-email confirmation to the old address (flow (b)) is not offered.
            return fail(Code::InvalidToken);
        }
        // Only our own single-use tokens: a stateless one (Better Auth's) could be replayed.
        let Some(jti) = claims.jti else {
            return fail(Code::InvalidToken);
        };
        let signed_in = state.current_session(&req).await?;
        if signed_in.as_ref().is_some_and(|s| s.user.id != user.id) {
            return fail(Code::InvalidUser);
        }
        let (now, user_id, verified) = (state.now(), user.id.clone(), user.email_verified);
        let updated = state
            .write(move |w| {
                w.transaction(|w| {
                    let identifier = change_email_identifier(&jti);
                    let row = store::take_verification(w.conn(), &identifier, now)?;
                    if row.is_none_or(|r| r.value != user_id) {
                        return Ok(None);
                    }
                    w.update_email(&user_id, &new_email, verified, now)
                        .map(Some)
                })
                .map_err(DbError::from)
            })
            .await;
        let updated = match updated {
            Ok(Some(updated)) => updated,
            // Used already (or never issued by us).
            Ok(None) => return fail(Code::InvalidToken),
            // Someone took the address since the link was sent.
            Err(AuthError::Db(DbError::Conflict(_))) => {
                return fail(Code::UserAlreadyExistsUseAnotherEmail);
            }
            Err(other) => return Err(other),
        };
        mail_email_changed(&state, &req, &user, &updated);
        let cookies = signed_in
            .map(|s| vec![state.reissue_cookie(&s)])
            .unwrap_or_default();
        return Ok(done(cookies, Some(updated), None));
    }

    if user.email_verified {
        return Ok(done(Vec::new(), None, None));
    }
    let (now, user_id) = (state.now(), user.id.clone());
    // Ownership of the address is proven now: social links made while it was unverified go,
    // with every session (one of them may be a pre-hijacker's).
    state
        .write(move |w| w.verify_email(&user_id, now).map_err(DbError::from))
        .await?;
    let mut cookies = Vec::new();
    let mut notice = None;
    if state
        .auth()
        .email_verification
        .auto_sign_in_after_verification
    {
        match state.current_session(&req).await? {
            Some(s) if s.user.id == user.id => cookies.push(state.reissue_cookie(&s)),
            // Signed in as someone else: the link verifies, but never replaces that session
            // (an attacker's link would otherwise sign the victim in as the attacker).
            Some(_) => notice = Some(SIGNED_IN_AS_ANOTHER_USER),
            None => {
                let session = state.create_session(&user.id, true, &req).await?;
                cookies = state.session_cookies(&session.token, true, &req);
            }
        }
    }
    Ok(done(cookies, None, notice))
}

/// `?notice=` of a verify-email redirect that verified the address but kept the browser's
/// session of another user instead of signing in (auto sign-in after verification).
pub const SIGNED_IN_AS_ANOTHER_USER: &str = "SIGNED_IN_AS_ANOTHER_USER";
