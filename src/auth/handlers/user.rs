//! `POST /update-user`, `/change-password`, `/change-email`, `/delete-user` (spec §6.9–6.12).

use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::render::{StatusBody, TokenAndUser, status_ok, token_and_user, with_cookies};
use crate::auth::service::user::{self as service, EmailChange};
use crate::auth::state::{AuthState, Client, SignedIn};
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(ToSchema)]
pub struct UpdateUserBody {
    name: Option<String>,
    // `null` removes the image.
    #[schema(value_type = Option<String>)]
    image: Option<Option<String>>,
}

impl FromFields for UpdateUserBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            name: f.opt_string("name"),
            image: f.opt_nullable_string("image"),
        }
    }
}

/// Updates the caller's name and/or image.
#[utoipa::path(post, path = "/api/auth/update-user", tag = "auth", request_body = UpdateUserBody,
    responses(
        (status = 200, description = "Updated; the session cookie is re-issued", body = StatusBody),
        (status = 400, description = "BODY_MUST_BE_AN_OBJECT, EMAIL_CAN_NOT_BE_UPDATED, NO_FIELDS_TO_UPDATE", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn update_user(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let Value::Object(map) = &body else {
        return Err(AuthError::bad_request(Code::BodyMustBeAnObject));
    };
    let truthy = |v: &Value| !matches!(v, Value::Null | Value::Bool(false)) && v != "" && v != 0;
    if map.get("email").is_some_and(truthy) {
        return Err(AuthError::bad_request(Code::EmailCanNotBeUpdated));
    }
    let UpdateUserBody { name, image } = UpdateUserBody::read(&body)?;
    service::update_user(&state, &signed_in.user.id, name, image).await?;
    Ok(with_cookies(
        HttpResponse::Ok(),
        [state.reissue_cookie(&signed_in)],
        &json!({"status": true}),
    ))
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    new_password: String,
    current_password: String,
    revoke_other_sessions: Option<bool>,
}

impl FromFields for ChangePasswordBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            new_password: f.string("newPassword").unwrap_or_default(),
            current_password: f.string("currentPassword").unwrap_or_default(),
            revoke_other_sessions: f.opt_bool("revokeOtherSessions"),
        }
    }
}

/// Changes the caller's password; optionally signs out everywhere and starts a new session.
#[utoipa::path(post, path = "/api/auth/change-password", tag = "auth", request_body = ChangePasswordBody,
    responses(
        (status = 200, description = "Changed; `token` is the new session's when other sessions were revoked", body = TokenAndUser),
        (status = 400, description = "INVALID_PASSWORD, PASSWORD_TOO_SHORT/LONG, CREDENTIAL_ACCOUNT_NOT_FOUND", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn change_password(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    client: Client,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let body = ChangePasswordBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let (new_password, current) = (body.new_password, body.current_password);
    let revoke = body.revoke_other_sessions.unwrap_or(false);
    let session =
        service::change_password(&state, &client, &signed_in, new_password, current, revoke)
            .await?;
    let remember = !signed_in.dont_remember;
    Ok(token_and_user(
        &state,
        &client,
        signed_in.user,
        session,
        remember,
    ))
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ChangeEmailBody {
    new_email: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
}

impl FromFields for ChangeEmailBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            new_email: f.email("newEmail").unwrap_or_default(),
            callback_url: f.opt_string("callbackURL"),
        }
    }
}

/// Changes the caller's email, when enabled: at once for unverified users with
/// `update_email_without_verification` (then mailing a verification link to the new address),
/// otherwise once the link mailed to the new address is followed.
#[utoipa::path(post, path = "/api/auth/change-email", tag = "auth", request_body = ChangeEmailBody,
    responses(
        (status = 200, description = "Changed, or the address is taken (not revealed)", body = StatusBody),
        (status = 400, description = "CHANGE_EMAIL_DISABLED, EMAIL_IS_THE_SAME, VERIFICATION_EMAIL_NOT_ENABLED", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn change_email(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    client: Client,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    if !state.auth().user.change_email_enabled {
        return Err(AuthError::bad_request(Code::ChangeEmailDisabled));
    }
    let body = ChangeEmailBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let (new_email, callback_url) = (body.new_email, body.callback_url);
    match service::change_email(&state, &client, &signed_in, new_email, callback_url).await? {
        EmailChange::Taken | EmailChange::LinkSent => Ok(status_ok()),
        EmailChange::Changed => Ok(with_cookies(
            HttpResponse::Ok(),
            [state.reissue_cookie(&signed_in)],
            &json!({"status": true}),
        )),
    }
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct DeleteUserBody {
    password: Option<String>,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
}

impl FromFields for DeleteUserBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            password: f.opt_string("password"),
            callback_url: f.opt_string("callbackURL"),
        }
    }
}

/// Deletes the caller's account, when enabled: with the password, or from a fresh session.
#[utoipa::path(post, path = "/api/auth/delete-user", tag = "auth", request_body = DeleteUserBody,
    responses(
        (status = 200, description = "Deleted; cookies cleared"),
        (status = 400, description = "INVALID_PASSWORD, CREDENTIAL_ACCOUNT_NOT_FOUND, SESSION_EXPIRED", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 404, description = "Deleting users is disabled", body = ErrorBody)))]
pub async fn delete_user(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    if !state.auth().user.delete_user_enabled {
        return Err(AuthError::not_found(Code::NotFound));
    }
    let body = DeleteUserBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    service::delete_user(&state, &signed_in, body.password, body.callback_url).await?;
    Ok(with_cookies(
        HttpResponse::Ok(),
        state.cookies.clear_session(),
        &json!({"success": true, "message": "User deleted"}),
    ))
}
