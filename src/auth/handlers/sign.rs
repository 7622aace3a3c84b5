//! `POST /sign-up/email`, `POST /sign-in/email`, `POST /sign-out` (spec §6.1–6.3).

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::verification::mail_verification;
use crate::auth::handlers::with_cookies;
use crate::auth::models::{NewUser, User};
use crate::auth::password::js_length;
use crate::auth::state::AuthState;
use crate::auth::store;
use crate::crypto::random;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct SignUpBody {
    name: String,
    email: String,
    password: String,
    image: Option<String>,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
    remember_me: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenAndUser {
    /// The new session's token; `null` when no session was started.
    pub token: Option<String>,
    pub user: User,
}

/// Enforces the configured password length (JavaScript string length).
pub(crate) fn check_password_length(state: &AuthState, password: &str) -> AuthResult<()> {
    let rules = &state.auth().email_and_password;
    let len = js_length(password);
    if len < rules.min_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooShort));
    }
    if len > rules.max_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooLong));
    }
    Ok(())
}

/// Creates a user with an email-and-password account.
#[utoipa::path(post, path = "/api/auth/sign-up/email", tag = "auth", request_body = SignUpBody,
    responses(
        (status = 200, description = "Signed up; a session cookie is set unless sign-up does not sign in", body = TokenAndUser),
        (status = 400, description = "Validation error, password too short or too long, sign-up disabled", body = ErrorBody),
        (status = 403, description = "Untrusted origin or callbackURL", body = ErrorBody),
        (status = 415, description = "Not JSON or form-urlencoded", body = ErrorBody),
        (status = 422, description = "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", body = ErrorBody)))]
pub async fn sign_up(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::JsonOrForm)?;
    let mut f = Fields::new(&body);
    let name = f.string("name");
    let email = f.email("email");
    let password = f.non_empty("password");
    let image = f.opt_string("image");
    let callback_url = f.opt_string("callbackURL");
    let remember = f.opt_bool("rememberMe").unwrap_or(true);
    f.finish()?;
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;

    let rules = state.auth().email_and_password.clone();
    if !rules.enabled || rules.disable_sign_up {
        return Err(AuthError::bad_request(Code::EmailPasswordSignUpDisabled));
    }
    check_password_length(&state, &password)?;
    let email = email.to_lowercase();
    let quiet_duplicates = rules.require_email_verification || !rules.auto_sign_in;

    // No look-up first: a taken address is found by the insert itself, so a new and an existing
    // address cost the same (one hash, one transaction) and the timing does not tell them apart.
    let hash = state.hasher.hash(password).await?;
    let now = state.now();
    let (new_name, new_email, new_image) = (name.clone(), email.clone(), image.clone());
    let created = state
        .write(move |w| {
            w.transaction(|w| {
                let id = random::id();
                let user = w.insert_user(&NewUser {
                    id: &id,
                    name: &new_name,
                    email: &new_email,
                    email_verified: false,
                    image: new_image.as_deref(),
                    created_at: now,
                    updated_at: now,
                })?;
                store::insert_credential_account(w.conn(), &user.id, &hash, now)?;
                Ok::<_, diesel::result::Error>(user)
            })
            .map_err(DbError::from)
        })
        .await;
    let user = match created {
        Ok(user) => user,
        // Taken (also by a sign-up racing this one).
        Err(AuthError::Db(DbError::Conflict(_))) if quiet_duplicates => {
            // Answer as for a new user, so sign-up does not reveal who has an account.
            let synthetic = User {
                name,
                email,
                email_verified: false,
                image,
                created_at: now,
                updated_at: now,
                id: random::id(),
            };
            return Ok(HttpResponse::Ok().json(TokenAndUser {
                token: None,
                user: synthetic,
            }));
        }
        Err(AuthError::Db(DbError::Conflict(_))) => {
            return Err(AuthError::unprocessable(
                Code::UserAlreadyExistsUseAnotherEmail,
            ));
        }
        Err(other) => return Err(other),
    };

    if state.auth().send_on_sign_up() {
        mail_verification(&state, &req, &user, &user.email, callback_url.as_deref());
    }
    if quiet_duplicates {
        return Ok(HttpResponse::Ok().json(TokenAndUser { token: None, user }));
    }
    start_session(&state, user, remember, &req).await
}

/// Starts a session for `user` and answers `{token, user}` with its cookies (sign-up, and
/// change-password when it signs out everywhere else).
pub(crate) async fn start_session(
    state: &AuthState,
    user: User,
    remember: bool,
    req: &HttpRequest,
) -> AuthResult<HttpResponse> {
    let session = state.create_session(&user.id, remember, req).await?;
    let cookies = state.session_cookies(&session.token, remember, req);
    Ok(with_cookies(
        HttpResponse::Ok(),
        cookies,
        &TokenAndUser {
            token: Some(session.token),
            user,
        },
    ))
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct SignInBody {
    email: String,
    password: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
    remember_me: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct SignInResponse {
    redirect: bool,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    user: User,
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/auth/sign-in/email", tag = "auth", request_body = SignInBody,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = SignInResponse),
        (status = 400, description = "INVALID_EMAIL, PASSWORD_TOO_LONG, validation error", body = ErrorBody),
        (status = 401, description = "INVALID_EMAIL_OR_PASSWORD", body = ErrorBody),
        (status = 403, description = "EMAIL_NOT_VERIFIED, untrusted origin or callbackURL", body = ErrorBody)))]
pub async fn sign_in(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::JsonOrForm)?;
    let mut f = Fields::new(&body);
    let email = f.string("email");
    let password = f.string("password");
    let callback_url = f.opt_string("callbackURL");
    let remember = f.opt_bool("rememberMe").unwrap_or(true);
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    if !body::is_email(&email) {
        return Err(AuthError::bad_request(Code::InvalidEmail));
    }
    let rules = state.auth().email_and_password.clone();
    if !rules.enabled {
        return Err(AuthError::bad_request(Code::EmailPasswordDisabled));
    }
    if js_length(&password) > rules.max_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooLong));
    }

    let email = email.to_lowercase();
    let found = state
        .db(move |conn| {
            let Some(user) = store::user_by_email(conn, &email)? else {
                return Ok(None);
            };
            let hash = store::credential_account(conn, &user.id)?.and_then(|a| a.password);
            Ok(Some((user, hash)))
        })
        .await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    // Unknown emails and missing passwords still cost one full hash.
    let valid = state.hasher.verify(password, hash).await?;
    let Some(user) = user.filter(|_| valid) else {
        return Err(AuthError::unauthorized(Code::InvalidEmailOrPassword));
    };
    if rules.require_email_verification && !user.email_verified {
        let verification = &state.auth().email_verification;
        if verification.enabled && verification.send_on_sign_in {
            mail_verification(&state, &req, &user, &user.email, callback_url.as_deref());
        }
        return Err(AuthError::forbidden(Code::EmailNotVerified));
    }

    let session = state.create_session(&user.id, remember, &req).await?;
    let cookies = state.session_cookies(&session.token, remember, &req);
    let mut builder = HttpResponse::Ok();
    if let Some(url) = &callback_url {
        builder.insert_header((header::LOCATION, url.as_str()));
    }
    Ok(with_cookies(
        builder,
        cookies,
        &SignInResponse {
            redirect: callback_url.is_some(),
            token: session.token,
            url: callback_url,
            user,
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub struct SuccessBody {
    success: bool,
}

/// Ends the session (if any) and always clears the session cookies.
#[utoipa::path(post, path = "/api/auth/sign-out", tag = "auth",
    responses((status = 200, description = "Signed out", body = SuccessBody)))]
pub async fn sign_out(state: web::Data<AuthState>, req: HttpRequest) -> AuthResult<HttpResponse> {
    if let Some(token) = state
        .cookies
        .read_signed(&req, &state.cookies.session_token)
    {
        state
            .write(move |w| w.delete_session_by_token(&token).map_err(DbError::from))
            .await?;
    }
    Ok(with_cookies(
        HttpResponse::Ok(),
        state.cookies.clear_session(),
        &json!({"success": true}),
    ))
}
