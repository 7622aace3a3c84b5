//! `POST /sign-in/social` and `POST /link-social`: the start of GitHub sign-in and linking
//! (spec §6.20, §6.21, §8.3); `handlers::callback` finishes both. GitHub is the one provider.

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::with_cookies;
use crate::auth::social::flow::{self, LinkData, STATE_COOKIE_MAX_AGE, STATE_PREFIX, StateData};
use crate::auth::social::github::{self, Github};
use crate::auth::social::store;
use crate::auth::state::{AuthState, SignedIn};
use crate::crypto::random;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub(super) const GITHUB: &str = "github";

#[derive(ToSchema)]
#[allow(dead_code)]
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
}

#[derive(Serialize, ToSchema)]
pub struct RedirectBody {
    /// GitHub's authorize URL.
    url: String,
    /// Whether the client should navigate there (false with `disableRedirect`).
    redirect: bool,
}

/// What sign-in/social and link-social read from a body.
struct Start {
    callback_url: Option<String>,
    new_user_url: Option<String>,
    error_url: Option<String>,
    disable_redirect: bool,
    scopes: Vec<String>,
    login_hint: Option<String>,
    request_sign_up: bool,
}

/// Reads and checks the body both start endpoints share. Every URL is checked against the
/// trusted origins before anything is written.
fn read_start(state: &AuthState, body: &Value, new_user: bool) -> AuthResult<(String, Start)> {
    let mut f = Fields::new(body);
    let provider = f.string("provider");
    let callback_url = f.opt_string("callbackURL");
    let new_user_url = if new_user {
        f.opt_string("newUserCallbackURL")
    } else {
        None
    };
    let error_url = f.opt_string("errorCallbackURL");
    let disable_redirect = f.opt_bool("disableRedirect").unwrap_or(false);
    let login_hint = f.opt_string("loginHint");
    let request_sign_up = f.opt_bool("requestSignUp").unwrap_or(false);
    f.finish()?;
    let scopes = read_scopes(body)?;
    let Some(provider) = provider else {
        return Err(AuthError::Internal("validated fields missing".into()));
    };
    let origins = &state.origins;
    origins.check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    origins.check_url(new_user_url.as_deref(), Code::InvalidNewUserCallbackUrl)?;
    origins.check_url(error_url.as_deref(), Code::InvalidErrorCallbackUrl)?;
    if provider != GITHUB || state.social.github.is_none() {
        return Err(AuthError::not_found(Code::ProviderNotFound));
    }
    if body.get("idToken").is_some_and(|v| !v.is_null()) {
        return Err(AuthError::not_found(Code::IdTokenNotSupported));
    }
    Ok((
        provider,
        Start {
            callback_url: callback_url.filter(|u| !u.is_empty()),
            new_user_url: new_user_url.filter(|u| !u.is_empty()),
            error_url: error_url.filter(|u| !u.is_empty()),
            disable_redirect,
            scopes,
            login_hint,
            request_sign_up,
        },
    ))
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

fn github_of(state: &AuthState) -> AuthResult<&Github> {
    state
        .social
        .github
        .as_ref()
        .ok_or(AuthError::not_found(Code::ProviderNotFound))
}

/// Writes the state row and answers with the authorize URL and the signed state cookie.
async fn begin(
    state: &AuthState,
    start: Start,
    link: Option<LinkData>,
) -> AuthResult<HttpResponse> {
    let github = github_of(state)?;
    let now = state.now();
    let oauth_state = github::new_state();
    let code_verifier = github::new_code_verifier();
    let url = github.authorize_url(
        &oauth_state,
        &code_verifier,
        &start.scopes,
        start.login_hint.as_deref(),
    );
    let expires_at = flow::state_expiry(now);
    let data = StateData {
        // Better Auth's default: the base URL's origin.
        callback_url: start
            .callback_url
            .unwrap_or_else(|| state.origins.base_origin().to_owned()),
        code_verifier,
        error_url: start.error_url,
        new_user_url: start.new_user_url,
        expires_at: expires_at.timestamp_millis(),
        oauth_state: oauth_state.clone(),
        link,
        request_sign_up: start.request_sign_up,
    };
    let value = serde_json::to_string(&data).map_err(|e| AuthError::Internal(e.to_string()))?;
    let identifier = format!("{STATE_PREFIX}{oauth_state}");
    state
        .db(move |conn| {
            store::insert_verification(conn, &random::id(), &identifier, &value, expires_at, now)
                .map_err(DbError::from)
        })
        .await?;
    let cookie = state.cookies.set(
        &state.cookies.state,
        &oauth_state,
        Some(STATE_COOKIE_MAX_AGE),
    );
    let mut builder = HttpResponse::Ok();
    if !start.disable_redirect {
        builder.insert_header((header::LOCATION, url.as_str()));
    }
    Ok(with_cookies(
        builder,
        [cookie],
        &RedirectBody {
            url,
            redirect: !start.disable_redirect,
        },
    ))
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
    let (_, start) = read_start(&state, &body, true)?;
    begin(&state, start, None).await
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct LinkSocialBody {
    provider: String,
    #[schema(rename = "callbackURL")]
    callback_url: Option<String>,
    #[schema(rename = "errorCallbackURL")]
    error_callback_url: Option<String>,
    disable_redirect: Option<bool>,
    scopes: Option<Vec<String>>,
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
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let (_, start) = read_start(&state, &body, false)?;
    let link = LinkData {
        user_id: signed_in.user.id.clone(),
        email: signed_in.user.email.clone(),
        session_id: Some(signed_in.session.id.clone()),
    };
    begin(&state, start, Some(link)).await
}
