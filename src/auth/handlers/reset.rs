//! Password reset (spec §6.13–6.15, §8.2): `POST /request-password-reset` (and the legacy
//! `/forget-password`), `GET /reset-password/{token}`, `POST /reset-password`.

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::redirect;
use crate::auth::handlers::sign::check_password_length;
use crate::auth::links::{encode_uri_component, resolve_with_param, set_search_param};
use crate::auth::models::NewVerification;
use crate::auth::state::{AuthState, request_id};
use crate::auth::store;
use crate::crypto::random;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use diesel::Connection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What every request for a reset hears, whether or not the address has an account.
const RESET_REQUESTED: &str =
    "If this email exists in our system, check your email for the reset link";

fn identifier(token: &str) -> String {
    format!("reset-password:{token}")
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct RequestResetBody {
    email: String,
    redirect_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResetRequested {
    status: bool,
    message: &'static str,
}

/// Mails a single-use reset link (1 hour) if the address has an account; answers the same
/// either way.
#[utoipa::path(post, path = "/api/auth/request-password-reset", tag = "auth",
    request_body = RequestResetBody,
    responses(
        (status = 200, description = "Always the same answer", body = ResetRequested),
        (status = 400, description = "VALIDATION_ERROR, RESET_PASSWORD_DISABLED", body = ErrorBody),
        (status = 403, description = "INVALID_REDIRECT_URL", body = ErrorBody)))]
pub async fn request_password_reset(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let email = f.email("email");
    let redirect_to = f.opt_string("redirectTo");
    f.finish()?;
    let Some(email) = email.map(|e| e.to_lowercase()) else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    state
        .origins
        .check_url(redirect_to.as_deref(), Code::InvalidRedirectUrl)?;
    let config = state.auth().password_reset.clone();
    if !config.enabled {
        return Err(AuthError::bad_request(Code::ResetPasswordDisabled));
    }

    // Known or not, the address goes to the background step and the answer leaves now: the
    // look-up, the token write and the mail happen after it, so its timing says nothing.
    let request_id = request_id(&req);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        // Let the answer go out first: the known address's extra work must not delay it.
        tokio::task::yield_now().await;
        if let Err(error) = deliver_reset(state, email, redirect_to, request_id.clone()).await {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), %error,
                "preparing a password reset failed");
        }
    });
    Ok(HttpResponse::Ok().json(ResetRequested {
        status: true,
        message: RESET_REQUESTED,
    }))
}

/// The background step of a reset request: when `email` has an account, writes a single-use
/// token (1 hour by default) and puts its mail in the outbox in the same transaction. The one
/// place a reset mail is made.
async fn deliver_reset(
    state: std::sync::Arc<AuthState>,
    email: String,
    redirect_to: Option<String>,
    request_id: Option<String>,
) -> AuthResult<()> {
    // Everything that depends on the address runs on the blocking pool; the worker thread only
    // hands a finished message to the mailer.
    let config = state.auth().password_reset.clone();
    let now = state.now();
    let token = random::string_from(random::ALPHANUMERIC, 24);
    let expires_at = now + Duration::seconds(config.token_expires_in_secs);
    let id = identifier(&token);
    let inner = state.clone();
    let queued = state
        .db(move |conn| {
            // The token and its mail commit together: a restart after this sends it anyway.
            conn.transaction::<_, DbError, _>(|conn| {
                let Some(user) = store::user_by_email(conn, &email)? else {
                    return Ok(false);
                };
                store::insert_verification(
                    conn,
                    &NewVerification {
                        id: &random::id(),
                        identifier: &id,
                        value: &user.id,
                        expires_at,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let link = format!(
                    "{}/reset-password/{token}?callbackURL={}",
                    inner.base_api_url(),
                    redirect_to
                        .as_deref()
                        .map(encode_uri_component)
                        .unwrap_or_default()
                );
                let mail = inner.mailer.templates.reset_password(
                    &user.email,
                    &user.name,
                    &link,
                    config.token_expires_in_secs,
                );
                inner
                    .mailer
                    .enqueue_in(conn, now, &mail, request_id.as_deref())?;
                Ok(true)
            })
        })
        .await?;
    if queued {
        state.mailer.wake();
    }
    Ok(())
}

/// The pre-1.4 name of `request-password-reset`, for older clients (`forgetPassword`).
#[utoipa::path(post, path = "/api/auth/forget-password", tag = "auth",
    request_body = RequestResetBody,
    responses(
        (status = 200, description = "Always the same answer", body = ResetRequested),
        (status = 400, description = "VALIDATION_ERROR, RESET_PASSWORD_DISABLED", body = ErrorBody),
        (status = 403, description = "INVALID_REDIRECT_URL", body = ErrorBody)))]
pub async fn forget_password(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    request_password_reset(state, req, bytes).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetCallbackQuery {
    /// The app's reset page; required.
    #[serde(rename = "callbackURL")]
    #[param(rename = "callbackURL")]
    callback_url: Option<String>,
}

/// The emailed link: sends the browser to the app's reset page with `?token=`, or with
/// `?error=INVALID_TOKEN`. The token is not used up here.
#[utoipa::path(get, path = "/api/auth/reset-password/{token}", tag = "auth",
    params(("token" = String, Path, description = "The emailed reset token"), ResetCallbackQuery),
    responses(
        (status = 302, description = "To callbackURL with `token`, or with `error=INVALID_TOKEN`"),
        (status = 400, description = "VALIDATION_ERROR: no callbackURL", body = ErrorBody),
        (status = 403, description = "Untrusted callbackURL", body = ErrorBody)))]
pub async fn reset_password_callback(
    state: web::Data<AuthState>,
    token: web::Path<String>,
    query: web::Query<ResetCallbackQuery>,
) -> AuthResult<HttpResponse> {
    let Some(callback) = query.into_inner().callback_url else {
        return Err(AuthError::validation(
            "query.callbackURL",
            "Invalid input: expected string, received undefined",
        ));
    };
    state
        .origins
        .check_url(Some(&callback), Code::InvalidCallbackUrl)?;
    let base = state.base_api_url();
    let token = token.into_inner();
    if callback.is_empty() || token.is_empty() {
        let target = set_search_param(
            &format!("{base}/error"),
            "error",
            Code::InvalidToken.as_str(),
        );
        return Ok(redirect(&target, []));
    }
    state.purge_expired_verifications().await?;
    let (id, now) = (identifier(&token), state.now());
    let live = state
        .db(move |conn| store::live_verification(conn, &id, now).map_err(DbError::from))
        .await?;
    let target = match live {
        Some(_) => resolve_with_param(&base, &callback, "token", &token),
        None => resolve_with_param(&base, &callback, "error", Code::InvalidToken.as_str()),
    };
    Ok(redirect(&target, []))
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ResetPasswordBody {
    new_password: String,
    /// Also accepted as `?token=`.
    token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetTokenQuery {
    token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    status: bool,
}

/// Sets a new password with a reset token, which is used up. Starts no session.
#[utoipa::path(post, path = "/api/auth/reset-password", tag = "auth",
    request_body = ResetPasswordBody, params(ResetTokenQuery),
    responses(
        (status = 200, description = "The password is changed", body = StatusBody),
        (status = 400, description = "INVALID_TOKEN (missing, unknown, used or expired), PASSWORD_TOO_SHORT/LONG, USER_NOT_FOUND, VALIDATION_ERROR", body = ErrorBody)))]
pub async fn reset_password(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    query: web::Query<ResetTokenQuery>,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let new_password = f.string("newPassword");
    let body_token = f.opt_string("token");
    f.finish()?;
    let Some(new_password) = new_password else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    let token = body_token
        .filter(|t| !t.is_empty())
        .or_else(|| query.into_inner().token.filter(|t| !t.is_empty()));
    let Some(token) = token else {
        return Err(AuthError::bad_request(Code::InvalidToken));
    };
    check_password_length(&state, &new_password)?;
    state.purge_expired_verifications().await?;

    let id = identifier(&token);
    // A cheap look first, so made-up tokens never cost a password hash.
    let (lookup, now) = (id.clone(), state.now());
    let live = state
        .db(move |conn| store::live_verification(conn, &lookup, now).map_err(DbError::from))
        .await?;
    if live.is_none() {
        return Err(AuthError::bad_request(Code::InvalidToken));
    }
    let hash = state.hasher.hash(new_password).await?;
    let now = state.now();
    let revoke = state.auth().password_reset.revoke_sessions_on_reset;
    let outcome = state
        .write(move |w| {
            w.transaction(|w| {
                // Consumed in the same statement that reads it: of two concurrent resets with
                // one token, exactly one finds the row.
                let Some(row) = store::take_verification(w.conn(), &id, now)? else {
                    return Ok(Err(Code::InvalidToken));
                };
                let Some(user) = store::user_by_id(w.conn(), &row.value)? else {
                    return Ok(Err(Code::UserNotFound));
                };
                match store::credential_account(w.conn(), &user.id)? {
                    Some(account) => {
                        store::set_password(w.conn(), &account.id, &hash, now)?;
                    }
                    // A GitHub-only user gets an email-and-password account.
                    None => {
                        store::insert_credential_account(w.conn(), &user.id, &hash, now)?;
                    }
                }
                // The reset proved the address: links made while it was unverified go.
                w.drop_links_of_unverified(&user)?;
                if revoke {
                    w.delete_sessions_of(&user.id)?;
                }
                Ok::<_, diesel::result::Error>(Ok(user.id))
            })
            .map_err(DbError::from)
        })
        .await?;
    match outcome {
        Ok(_) => Ok(HttpResponse::Ok().json(StatusBody { status: true })),
        Err(code) => Err(AuthError::bad_request(code)),
    }
}
