//! Password reset (spec §6.13–6.15, §8.2): `POST /request-password-reset` (and the legacy
//! `/forget-password`), `GET /reset-password/{token}`, `POST /reset-password`.

use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::{AuthError, AuthResult};
use crate::auth::render::{StatusBody, redirect};
use crate::auth::service::reset as service;
use crate::auth::state::{AuthState, Client};
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What every request for a reset hears, whether or not the address has an account.
const RESET_REQUESTED: &str =
    "If this email exists in our system, check your email for the reset link";

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RequestResetBody {
    email: String,
    redirect_to: Option<String>,
}

impl FromFields for RequestResetBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.email("email").unwrap_or_default(),
            redirect_to: f.opt_string("redirectTo"),
        }
    }
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
    client: Client,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let body = RequestResetBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let (email, redirect_to) = (body.email, body.redirect_to);
    service::request_password_reset(state.into_inner(), &client, email, redirect_to)?;
    Ok(HttpResponse::Ok().json(ResetRequested {
        status: true,
        message: RESET_REQUESTED,
    }))
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
    client: Client,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    request_password_reset(state, req, client, bytes).await
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
    let target = service::reset_target(&state, &token, &callback).await?;
    Ok(redirect(&target, []))
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ResetPasswordBody {
    new_password: String,
    /// Also accepted as `?token=`.
    token: Option<String>,
}

impl FromFields for ResetPasswordBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            new_password: f.string("newPassword").unwrap_or_default(),
            token: f.opt_string("token"),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetTokenQuery {
    token: Option<String>,
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
    let body = ResetPasswordBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let (new_password, body_token) = (body.new_password, body.token);
    let token = body_token
        .filter(|t| !t.is_empty())
        .or_else(|| query.into_inner().token.filter(|t| !t.is_empty()));
    service::reset_password(&state, new_password, token).await?;
    Ok(HttpResponse::Ok().json(StatusBody { status: true }))
}
