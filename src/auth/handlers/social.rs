//! `POST /sign-in/social`, `GET|POST /callback/{provider}`, `POST /link-social`,
//! `GET /list-accounts`, `POST /unlink-account` (spec §6.18–6.22, §8.3). GitHub is the one
//! provider.

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::handlers::with_cookies;
use crate::auth::social::flow::{
    self, CallbackError, Decision, LinkData, ProviderAccount, STATE_COOKIE_MAX_AGE, STATE_PREFIX,
    StateData,
};
use crate::auth::social::github::{self, Github};
use crate::auth::social::store;
use crate::auth::state::{AuthState, SignedIn};
use crate::crypto::hmac::constant_time_eq;
use crate::crypto::random;
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

const GITHUB: &str = "github";

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

#[derive(IntoParams)]
#[allow(dead_code)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A 302 as Better Auth sends it: `content-type: application/json`, empty body.
fn found(location: &str, cookies: impl IntoIterator<Item = String>) -> HttpResponse {
    super::redirect(location, cookies)
}

/// The first value of each query parameter.
fn params(query: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if !out.iter().any(|(seen, _)| *seen == k) {
            out.push((k.into_owned(), v.into_owned()));
        }
    }
    out
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A failed callback: where to send the browser and why.
struct Failure {
    target: String,
    error: String,
    description: Option<String>,
    /// Expire the state cookie (not when it belongs to another flow in this browser).
    clear_state: bool,
}

impl Failure {
    fn new(target: &str, error: CallbackError) -> Self {
        Self {
            target: target.to_owned(),
            error: error.code().to_owned(),
            description: None,
            clear_state: true,
        }
    }
}

/// Finishes the flow GitHub sends the browser back to: state, code exchange, profile, the
/// linking rules, a session. Every outcome is a 302: to `callbackURL` (`newUserCallbackURL`
/// for a new user) or to the error URL with `?error=…`.
#[utoipa::path(get, path = "/api/auth/callback/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "`github`"), CallbackQuery),
    responses((status = 302, description = "To callbackURL / newUserCallbackURL with the session cookie, or to the error URL with `?error=`")))]
pub async fn callback(
    state: web::Data<AuthState>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> HttpResponse {
    let base_error = format!("{}/error", state.base_api_url());
    match run_callback(&state, &req, &provider, &base_error).await {
        Ok(response) => response,
        Err(failure) => {
            let location = flow::error_redirect(
                &failure.target,
                &failure.error,
                failure.description.as_deref(),
            );
            let clear = failure
                .clear_state
                .then(|| state.cookies.expire(&state.cookies.state));
            found(&location, clear)
        }
    }
}

async fn run_callback(
    state: &AuthState,
    req: &HttpRequest,
    provider: &str,
    base_error: &str,
) -> Result<HttpResponse, Failure> {
    let github = match &state.social.github {
        Some(github) if provider == GITHUB => github,
        _ => {
            return Err(Failure::new(
                base_error,
                CallbackError::OauthProviderNotFound,
            ));
        }
    };
    let params = params(req.query_string());
    let Some(oauth_state) = param(&params, "state").map(str::to_owned) else {
        return Err(Failure::new(base_error, CallbackError::StateNotFound));
    };
    let identifier = format!("{STATE_PREFIX}{oauth_state}");
    let internal = |e: AuthError| {
        tracing::error!(error = %e, "OAuth callback failed");
        Failure::new(base_error, CallbackError::InternalServerError)
    };

    // The state must be the one this browser was given: otherwise someone else's flow is being
    // finished here (login CSRF). That flow's row stays, as in Better Auth.
    let cookie_state = state.cookies.read_signed(req, &state.cookies.state);
    let same_browser = cookie_state
        .as_deref()
        .is_some_and(|c| constant_time_eq(c.as_bytes(), oauth_state.as_bytes()));
    if !same_browser {
        let id = identifier.clone();
        let row = state
            .db(move |conn| store::peek_verification(conn, &id).map_err(DbError::from))
            .await
            .map_err(internal)?;
        let target = row
            .and_then(|r| serde_json::from_str::<StateData>(&r.value).ok())
            .and_then(|d| d.error_url)
            .filter(|u| state.origins.allows_redirect(u))
            .unwrap_or_else(|| base_error.to_owned());
        return Err(Failure {
            clear_state: false,
            ..Failure::new(&target, CallbackError::StateMismatch)
        });
    }

    // Consumed in one statement: a replay finds nothing.
    let id = identifier.clone();
    let row = state
        .db(move |conn| store::take_verification(conn, &id).map_err(DbError::from))
        .await
        .map_err(internal)?;
    let Some(data) = row
        .as_ref()
        .and_then(|r| serde_json::from_str::<StateData>(&r.value).ok())
    else {
        return Err(Failure::new(base_error, CallbackError::StateMismatch));
    };
    // Redirect targets were checked when the flow started; check again, so a row written
    // before the trusted origins changed (or by another server) cannot redirect anywhere.
    let allowed = |u: &str| state.origins.allows_redirect(u);
    let error_target = data
        .error_url
        .clone()
        .filter(|u| allowed(u))
        .unwrap_or_else(|| base_error.to_owned());
    let now = state.now();
    let row_expired = row.as_ref().is_some_and(|r| r.expires_at < now);
    if row_expired || data.expires_at < now.timestamp_millis() {
        return Err(Failure::new(&error_target, CallbackError::StateMismatch));
    }

    if let Some(error) = param(&params, "error") {
        return Err(Failure {
            target: error_target,
            error: error.to_owned(),
            description: param(&params, "error_description").map(str::to_owned),
            clear_state: true,
        });
    }
    let Some(code) = param(&params, "code") else {
        return Err(Failure::new(&error_target, CallbackError::NoCode));
    };
    if !allowed(&data.callback_url) {
        return Err(Failure::new(&error_target, CallbackError::NoCallbackUrl));
    }

    let tokens = github
        .exchange_code(code, &data.code_verifier)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "GitHub code exchange failed");
            Failure::new(&error_target, CallbackError::InvalidCode)
        })?;
    let profile = github.profile(&tokens.access_token).await.map_err(|e| {
        tracing::warn!(error = %e, "GitHub user info failed");
        Failure::new(&error_target, CallbackError::UnableToGetUserInfo)
    })?;
    let Some(email) = profile.email.clone() else {
        return Err(Failure::new(&error_target, CallbackError::EmailNotFound));
    };
    let seconds =
        |d: std::time::Duration| Duration::seconds(d.as_secs().min(i64::MAX as u64) as i64);
    let account = ProviderAccount {
        provider_id: GITHUB,
        account_id: profile.id,
        email,
        email_verified: profile.email_verified,
        name: profile.name,
        image: profile.image,
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        access_token_expires_at: tokens.expires_in.map(|d| now + seconds(d)),
        refresh_token_expires_at: tokens.refresh_token_expires_in.map(|d| now + seconds(d)),
        scopes: tokens.scopes.clone(),
    };
    let vault = state.social.vault.clone();
    let linking = state.auth().account_linking.clone();

    let decision = match data.link.clone() {
        Some(link) => {
            // A link state without a session id was written by Better Auth (it encrypts the
            // session token instead): this browser's own session must then be the linker's.
            let session_ok = match link.session_id {
                Some(_) => true,
                None => state
                    .current_session(req)
                    .await
                    .map_err(internal)?
                    .is_some_and(|s| s.user.id == link.user_id),
            };
            state
                .db(move |conn| {
                    flow::link(conn, &vault, &linking, &link, session_ok, &account, now)
                        .map_err(DbError::from)
                })
                .await
        }
        None => {
            // Better Auth: `disableImplicitSignUp && !requestSignUp || disableSignUp`.
            let github = &state.auth().github;
            let sign_up = !(github.disable_sign_up
                || (github.disable_implicit_sign_up && !data.request_sign_up));
            state
                .db(move |conn| {
                    flow::sign_in(conn, &vault, &linking, sign_up, &account, now)
                        .map_err(DbError::from)
                })
                .await
        }
    };
    let expire_state = state.cookies.expire(&state.cookies.state);
    match decision {
        Ok(Decision::Rejected(why)) => Err(Failure::new(&error_target, why)),
        Ok(Decision::Linked) => {
            if let Some(link) = &data.link {
                // Linking may mark the user verified.
                state.sessions.forget_user(&link.user_id);
            }
            Ok(found(&data.callback_url, [expire_state]))
        }
        Ok(Decision::SignIn { user, created }) => {
            // Signing in may have marked the user verified.
            state.sessions.forget_user(&user.id);
            // A user GitHub could not vouch for gets the verification mail sign-up sends.
            if created && !user.email_verified && state.auth().send_on_sign_up() {
                crate::auth::handlers::verification::mail_verification(
                    state,
                    req,
                    &user,
                    &user.email,
                    None,
                    Some(data.callback_url.as_str()),
                );
            }
            let session = state
                .create_session(&user.id, true, req)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "creating the session after GitHub sign-in");
                    Failure::new(&error_target, CallbackError::UnableToCreateSession)
                })?;
            let target = match data.new_user_url.as_deref() {
                Some(url) if created && allowed(url) => url,
                _ => data.callback_url.as_str(),
            };
            let mut cookies = vec![expire_state];
            cookies.extend(state.session_cookies(&session.token, true, req));
            Ok(found(target, cookies))
        }
        Err(AuthError::Db(DbError::Conflict(constraint))) => {
            // A user with this email appeared between our look-up and insert (a racing email
            // sign-up): refuse rather than guess.
            tracing::warn!(%constraint, "GitHub sign-in raced another write");
            Err(Failure::new(
                &error_target,
                CallbackError::UnableToCreateUser,
            ))
        }
        Err(e) => Err(internal(e)),
    }
}

/// GitHub's `response_mode=form_post`: the parameters arrive as a form; send the browser on to
/// the GET form with them merged into the query (query values win), as Better Auth does.
#[utoipa::path(post, path = "/api/auth/callback/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "`github`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`code`, `state`, `error`, `error_description` as GitHub posts them"),
    responses((status = 302, description = "To the GET form of the callback with the parameters in the query")))]
pub async fn callback_post(
    state: web::Data<AuthState>,
    req: HttpRequest,
    provider: web::Path<String>,
    bytes: Bytes,
) -> HttpResponse {
    let base = state.base_api_url();
    if provider.as_str() != GITHUB {
        return found(
            &flow::error_redirect(
                &format!("{base}/error"),
                CallbackError::OauthProviderNotFound.code(),
                None,
            ),
            None,
        );
    }
    let mut merged = params(req.query_string());
    let posted = body::parse(&req, &bytes, Accepts::JsonOrForm).unwrap_or(Value::Null);
    if let Value::Object(map) = posted {
        for (k, v) in map {
            if let Value::String(v) = v
                && !merged.iter().any(|(seen, _)| *seen == k)
            {
                merged.push((k, v));
            }
        }
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &merged {
        query.append_pair(k, v);
    }
    found(
        &format!("{base}/callback/{GITHUB}?{}", query.finish()),
        None,
    )
}
