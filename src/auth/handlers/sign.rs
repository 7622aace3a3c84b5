//! `POST /sign-up/email`, `POST /sign-in/email`, `POST /sign-out` (spec §6.1–6.3).

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult};
use crate::auth::handlers::render::{TokenAndUser, token_and_user, with_cookies};
use crate::auth::models::User;
use crate::auth::service::sign::{self as service, SignIn, SignUp};
use crate::auth::state::{AuthState, Client};
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
    client: Client,
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
    let input = SignUp {
        name,
        email,
        password,
        image,
        callback_url,
        remember,
    };
    let signed_up = service::sign_up(&state, &client, input).await?;
    let (user, session) = (signed_up.user, signed_up.session);
    Ok(token_and_user(&state, &client, user, session, remember))
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
    client: Client,
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
    let input = SignIn {
        email,
        password,
        callback_url: callback_url.clone(),
        remember,
    };
    let (user, session) = service::sign_in(&state, &client, input).await?;
    let cookies = state.session_cookies(&session.token, remember, &client);
    let mut builder = HttpResponse::Ok();
    if let Some(url) = &callback_url {
        builder.insert_header((header::LOCATION, url.as_str()));
    }
    let body = SignInResponse {
        redirect: callback_url.is_some(),
        token: session.token,
        url: callback_url,
        user,
    };
    Ok(with_cookies(builder, cookies, &body))
}

#[derive(Serialize, ToSchema)]
pub struct SuccessBody {
    success: bool,
}

/// Ends the session (if any) and always clears the session cookies.
#[utoipa::path(post, path = "/api/auth/sign-out", tag = "auth",
    responses((status = 200, description = "Signed out", body = SuccessBody)))]
pub async fn sign_out(state: web::Data<AuthState>, client: Client) -> AuthResult<HttpResponse> {
    service::sign_out(&state, &client).await?;
    Ok(with_cookies(
        HttpResponse::Ok(),
        state.cookies.clear_session(),
        &json!({"success": true}),
    ))
}
