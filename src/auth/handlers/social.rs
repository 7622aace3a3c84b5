//! `POST /sign-in/social` and `POST /link-social`: the start of GitHub sign-in and linking
//! (spec §6.20, §6.21, §8.3); the callback handler finishes both. GitHub is the one provider.

use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::{AuthError, AuthResult};
use crate::auth::render::with_cookies;
use crate::auth::service::social::{self as service, Start};
use crate::auth::social::flow::{LinkData, STATE_COOKIE_MAX_AGE};
use crate::auth::state::{AuthState, SignedIn};
use crate::platform::error::ErrorBody;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SocialSignInBody {
    /// Only `github` is configured.
    provider: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
    #[schema(rename = "newUserCallbackURL")]
    new_user_callback_url: Option<String>,
    #[schema(rename = "errorCallbackURL")]
    error_callback_url: Option<String>,
    disable_redirect: Option<bool>,
    /// Asked for on top of `read:user user:email`.
    scopes: Option<Vec<String>>,
    login_hint: Option<String>,
    /// The caller means to create an account (see `auth.github.disable_implicit_sign_up`).
    request_sign_up: Option<bool>,
    /// An `idToken` came (refused: GitHub has none).
    #[schema(ignore)]
    id_token: bool,
}

impl FromFields for SocialSignInBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            provider: f.string("provider").unwrap_or_default(),
            callback_url: f.opt_string("callbackURL"),
            new_user_callback_url: f.opt_string("newUserCallbackURL"),
            error_callback_url: f.opt_string("errorCallbackURL"),
            disable_redirect: f.opt_bool("disableRedirect"),
            scopes: None,
            login_hint: f.opt_string("loginHint"),
            request_sign_up: f.opt_bool("requestSignUp"),
            id_token: false,
        }
    }

    fn check(self, body: &Value) -> AuthResult<Self> {
        Ok(Self {
            scopes: Some(read_scopes(body)?),
            id_token: has_id_token(body),
            ..self
        })
    }
}

impl SocialSignInBody {
    fn into_start(self) -> (String, Start, bool) {
        let start = Start {
            callback_url: self.callback_url,
            new_user_url: self.new_user_callback_url,
            error_url: self.error_callback_url,
            disable_redirect: self.disable_redirect.unwrap_or(false),
            scopes: self.scopes.unwrap_or_default(),
            login_hint: self.login_hint,
            request_sign_up: self.request_sign_up.unwrap_or(false),
        };
        (self.provider, start, self.id_token)
    }
}

fn has_id_token(body: &Value) -> bool {
    body.get("idToken").is_some_and(|v| !v.is_null())
}

#[derive(Serialize, ToSchema)]
pub struct RedirectBody {
    /// GitHub's authorize URL.
    url: String,
    /// Whether the client should navigate there (false with `disableRedirect`).
    redirect: bool,
}

/// `scopes?: string[]`, zod-style errors.
fn read_scopes(body: &Value) -> AuthResult<Vec<String>> {
    let invalid = |what: &str| AuthError::validation("body.scopes", what);
    match body.get("scopes") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.contains('\0') && !s.trim().is_empty() => {
                    Ok(s.trim().to_owned())
                }
                _ => Err(invalid("Invalid input: expected string")),
            })
            .collect(),
        Some(other) => Err(invalid(&format!(
            "Invalid input: expected array, received {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                _ => "object",
            }
        ))),
    }
}

/// Starts the flow and answers with the authorize URL and the signed `state` cookie.
async fn begin(
    state: &AuthState,
    (provider, start, id_token): (String, Start, bool),
    link: Option<LinkData>,
) -> AuthResult<HttpResponse> {
    let disable_redirect = start.disable_redirect;
    let started = service::start(state, &provider, start, id_token, link).await?;
    let cookies = &state.cookies;
    let cookie = cookies.set(
        &cookies.state,
        &started.oauth_state,
        Some(STATE_COOKIE_MAX_AGE),
    );
    let mut builder = HttpResponse::Ok();
    if !disable_redirect {
        builder.insert_header((header::LOCATION, started.url.as_str()));
    }
    let body = RedirectBody {
        url: started.url,
        redirect: !disable_redirect,
    };
    Ok(with_cookies(builder, [cookie], &body))
}

/// Starts GitHub sign-in: answers with GitHub's authorize URL (state + PKCE S256) and sets the
/// signed `state` cookie.
#[utoipa::path(post, path = "/api/auth/sign-in/social", tag = "auth", request_body = SocialSignInBody,
    responses(
        (status = 200, description = "The authorize URL; `Location` too unless `disableRedirect`", body = RedirectBody),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 403, description = "INVALID_CALLBACK_URL, INVALID_NEW_USER_CALLBACK_URL, INVALID_ERROR_CALLBACK_URL", body = ErrorBody),
        (status = 404, description = "PROVIDER_NOT_FOUND (not configured), ID_TOKEN_NOT_SUPPORTED", body = ErrorBody)))]
pub async fn sign_in_social(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
) -> AuthResult<HttpResponse> {
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    begin(&state, SocialSignInBody::read(&body)?.into_start(), None).await
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct LinkSocialBody {
    provider: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
    #[schema(rename = "errorCallbackURL")]
    error_callback_url: Option<String>,
    disable_redirect: Option<bool>,
    scopes: Option<Vec<String>>,
    login_hint: Option<String>,
    request_sign_up: Option<bool>,
    #[schema(ignore)]
    id_token: bool,
}

impl FromFields for LinkSocialBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        Self {
            provider: f.string("provider").unwrap_or_default(),
            callback_url: f.opt_string("callbackURL"),
            error_callback_url: f.opt_string("errorCallbackURL"),
            disable_redirect: f.opt_bool("disableRedirect"),
            scopes: None,
            login_hint: f.opt_string("loginHint"),
            request_sign_up: f.opt_bool("requestSignUp"),
            id_token: false,
        }
    }

    fn check(self, body: &Value) -> AuthResult<Self> {
        Ok(Self {
            scopes: Some(read_scopes(body)?),
            id_token: has_id_token(body),
            ..self
        })
    }
}

impl LinkSocialBody {
    /// The sign-in body without `newUserCallbackURL`, which linking does not read.
    fn into_start(self) -> (String, Start, bool) {
        SocialSignInBody {
            provider: self.provider,
            callback_url: self.callback_url,
            new_user_callback_url: None,
            error_callback_url: self.error_callback_url,
            disable_redirect: self.disable_redirect,
            scopes: self.scopes,
            login_hint: self.login_hint,
            request_sign_up: self.request_sign_up,
            id_token: self.id_token,
        }
        .into_start()
    }
}

/// Starts linking a GitHub account to the signed-in user; the callback links it.
#[utoipa::path(post, path = "/api/auth/link-social", tag = "auth", request_body = LinkSocialBody,
    responses(
        (status = 200, description = "The authorize URL; `Location` too unless `disableRedirect`", body = RedirectBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "INVALID_CALLBACK_URL, INVALID_ERROR_CALLBACK_URL", body = ErrorBody),
        (status = 404, description = "PROVIDER_NOT_FOUND", body = ErrorBody)))]
pub async fn link_social(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let body = LinkSocialBody::read(&body::parse(&req, &bytes, Accepts::Json)?)?;
    let link = LinkData {
        user_id: signed_in.user.id.clone(),
        email: signed_in.user.email.clone(),
        session_id: Some(signed_in.session.id.clone()),
    };
    begin(&state, body.into_start(), Some(link)).await
}
