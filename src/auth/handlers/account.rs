//! `POST /update-user`, `/change-password`, `/change-email`, `/delete-user` (spec §6.9–6.12).

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::sign::{TokenAndUser, check_password_length, start_session};
use crate::auth::handlers::verification::{
    mail_change_email, mail_email_changed, mail_verification,
};
use crate::auth::handlers::with_cookies;
use crate::auth::password::js_length;
use crate::auth::state::{AuthState, SignedIn};
use crate::auth::store;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpdateUserBody {
    name: Option<String>,
    image: Option<String>,
}

/// Updates the caller's name and/or image.
#[utoipa::path(post, path = "/api/auth/update-user", tag = "auth", request_body = UpdateUserBody,
    responses(
        (status = 200, description = "Updated; the session cookie is re-issued", body = super::session::StatusBody),
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
    let mut f = Fields::new(&body);
    let name = f.opt_string("name");
    let image = f.opt_nullable_string("image");
    f.finish()?;
    if name.is_none() && image.is_none() {
        return Err(AuthError::bad_request(Code::NoFieldsToUpdate));
    }
    let now = state.now();
    let user_id = signed_in.user.id.clone();
    state
        .write(move |w| {
            w.update_profile(
                &user_id,
                name.as_deref(),
                image.as_ref().map(|i| i.as_deref()),
                now,
            )
            .map_err(DbError::from)
        })
        .await?;
    Ok(with_cookies(
        HttpResponse::Ok(),
        [state.reissue_cookie(&signed_in)],
        &json!({"status": true}),
    ))
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    new_password: String,
    current_password: String,
    revoke_other_sessions: Option<bool>,
}

/// Verifies `password` against the user's credential account (400s as Better Auth answers).
async fn check_current_password(
    state: &AuthState,
    user_id: &str,
    password: String,
) -> AuthResult<String> {
    let user_id = user_id.to_owned();
    let account = state
        .db(move |conn| store::credential_account(conn, &user_id).map_err(DbError::from))
        .await?;
    let Some((account_id, hash)) = account.and_then(|a| a.password.map(|p| (a.id, p))) else {
        return Err(AuthError::bad_request(Code::CredentialAccountNotFound));
    };
    if !state.hasher.verify(password, Some(hash)).await? {
        return Err(AuthError::bad_request(Code::InvalidPassword));
    }
    Ok(account_id)
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
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let new_password = f.string("newPassword");
    let current = f.string("currentPassword");
    let revoke = f.opt_bool("revokeOtherSessions").unwrap_or(false);
    f.finish()?;
    let (Some(new_password), Some(current)) = (new_password, current) else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    check_password_length(&state, &new_password)?;
    if js_length(&current) > state.auth().email_and_password.max_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooLong));
    }
    let account_id = check_current_password(&state, &signed_in.user.id, current).await?;
    let hash = state.hasher.hash(new_password).await?;
    let now = state.now();
    let user_id = signed_in.user.id.clone();
    state
        .write(move |w| {
            {
                store::set_password(w.conn(), &account_id, &hash, now)?;
                if revoke {
                    w.delete_sessions_of(&user_id)?;
                }
                Ok::<_, diesel::result::Error>(())
            }
            .map_err(DbError::from)
        })
        .await?;
    let user = signed_in.user;
    if !revoke {
        return Ok(HttpResponse::Ok().json(TokenAndUser { token: None, user }));
    }
    let remember = !signed_in.dont_remember;
    start_session(&state, user, remember, &req).await
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ChangeEmailBody {
    new_email: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
}

/// Changes the caller's email, when enabled: at once for unverified users with
/// `update_email_without_verification` (then mailing a verification link to the new address),
/// otherwise once the link mailed to the new address is followed.
#[utoipa::path(post, path = "/api/auth/change-email", tag = "auth", request_body = ChangeEmailBody,
    responses(
        (status = 200, description = "Changed, or the address is taken (not revealed)", body = super::session::StatusBody),
        (status = 400, description = "CHANGE_EMAIL_DISABLED, EMAIL_IS_THE_SAME, VERIFICATION_EMAIL_NOT_ENABLED", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn change_email(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let settings = state.auth().user.clone();
    if !settings.change_email_enabled {
        return Err(AuthError::bad_request(Code::ChangeEmailDisabled));
    }
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let new_email = f.email("newEmail");
    let callback_url = f.opt_string("callbackURL");
    f.finish()?;
    let Some(new_email) = new_email.map(|e| e.to_lowercase()) else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    if new_email == signed_in.user.email {
        return Err(AuthError::bad_request(Code::EmailIsTheSame));
    }
    let immediate = !signed_in.user.email_verified && settings.update_email_without_verification;
    let can_mail = state.auth().email_verification.enabled;
    if !immediate && !can_mail {
        return Err(AuthError::bad_request(Code::VerificationEmailNotEnabled));
    }
    let now = state.now();
    let user_id = signed_in.user.id.clone();
    let target = new_email.clone();
    let changed = state
        .write(move |w| {
            if store::user_by_email(w.conn(), &target)?.is_some() {
                return Ok(None);
            }
            if !immediate {
                return Ok(Some(None));
            }
            Ok(Some(Some(w.update_email(&user_id, &target, false, now)?)))
        })
        .await;
    match changed {
        // Taken (found, or lost a race to the unique index): answer as if it worked.
        Ok(None) | Err(AuthError::Db(DbError::Conflict(_))) => {
            Ok(HttpResponse::Ok().json(json!({"status": true})))
        }
        // Flow (a): changed at once; the new address gets a verification mail of its own.
        Ok(Some(Some(user))) => {
            mail_email_changed(&state, &req, &signed_in.user, &user);
            if can_mail {
                mail_verification(&state, &req, &user, &user.email, callback_url.as_deref());
            }
            Ok(with_cookies(
                HttpResponse::Ok(),
                [state.reissue_cookie(&signed_in)],
                &json!({"status": true}),
            ))
        }
        // Flow (c): nothing changes until the link mailed to the new address is followed.
        Ok(Some(None)) => {
            mail_change_email(
                &state,
                &req,
                &signed_in.user,
                &new_email,
                callback_url.as_deref(),
            )
            .await?;
            Ok(HttpResponse::Ok().json(json!({"status": true})))
        }
        Err(other) => Err(other),
    }
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct DeleteUserBody {
    password: Option<String>,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
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
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let mut f = Fields::new(&body);
    let password = f.opt_string("password");
    let callback_url = f.opt_string("callbackURL");
    f.finish()?;
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    match password {
        Some(password) => {
            check_current_password(&state, &signed_in.user.id, password).await?;
        }
        None if !state.is_fresh(&signed_in.session) => {
            return Err(AuthError::bad_request(Code::SessionExpired));
        }
        None => {}
    }
    let user_id = signed_in.user.id;
    state
        .write(move |w| w.delete_user(&user_id).map_err(DbError::from))
        .await?;
    Ok(with_cookies(
        HttpResponse::Ok(),
        state.cookies.clear_session(),
        &json!({"success": true, "message": "User deleted"}),
    ))
}
