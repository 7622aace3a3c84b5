//! `POST /sign-up/email`, `POST /sign-in/email`, `POST /sign-out` (spec §6.1–6.3).

use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::AuthResult;
use crate::auth::models::User;
use crate::auth::render::{TokenAndUser, token_and_user, with_cookies};
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

impl FromFields for SignUpBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            name: f.string("name").unwrap_or_default(),
            email: f.email("email").unwrap_or_default(),
            password: f.non_empty("password").unwrap_or_default(),
            image: f.opt_string("image"),
            callback_url: f.opt_string("callbackURL"),
            remember_me: f.opt_bool("rememberMe"),
        }
    }
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
    let body = SignUpBody::read(&body::parse(&req, &bytes, Accepts::JsonOrForm)?)?;
    let remember = body.remember_me.unwrap_or(true);
    let input = SignUp {
        name: body.name,
        email: body.email,
        password: body.password,
        image: body.image,
        callback_url: body.callback_url,
        remember,
    };
    let signed_up = service::sign_up(&state, &client, input).await?;
    let (user, session) = (signed_up.user, signed_up.session);
    Ok(token_and_user(&state, &client, user, session, remember))
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SignInBody {
    email: String,
    password: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
    remember_me: Option<bool>,
}

impl FromFields for SignInBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            email: f.string("email").unwrap_or_default(),
            password: f.string("password").unwrap_or_default(),
            callback_url: f.opt_string("callbackURL"),
            remember_me: f.opt_bool("rememberMe"),
        }
    }
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
    let body = SignInBody::read(&body::parse(&req, &bytes, Accepts::JsonOrForm)?)?;
    let (remember, callback_url) = (body.remember_me.unwrap_or(true), body.callback_url);
    let input = SignIn {
        email: body.email,
        password: body.password,
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
