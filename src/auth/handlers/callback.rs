//! `GET|POST /callback/{provider}`: GitHub sends the browser back here to finish sign-in or
//! linking (spec §8.3); the flow started in `handlers::social`.

use crate::auth::body::{self, Accepts};
use crate::auth::error::AuthError;
use crate::auth::handlers::social::GITHUB;
use crate::auth::social::flow::{
    self, CallbackError, Decision, ProviderAccount, STATE_PREFIX, StateData,
};
use crate::auth::social::store;
use crate::auth::state::AuthState;
use crate::crypto::hmac::constant_time_eq;
use crate::db::DbError;
use crate::platform::clock::expires_after;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use utoipa::IntoParams;

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
    // GitHub's lifetimes are provider input: clamped, never an overflowing `now + delta`.
    let expiry = |d: std::time::Duration| expires_after(now, d.as_secs());
    let account = ProviderAccount {
        provider_id: GITHUB,
        account_id: profile.id,
        email,
        email_verified: profile.email_verified,
        name: profile.name,
        image: profile.image,
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        access_token_expires_at: tokens.expires_in.map(expiry),
        refresh_token_expires_at: tokens.refresh_token_expires_in.map(expiry),
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
                .write(move |w| {
                    flow::link(w, &vault, &linking, &link, session_ok, &account, now)
                        .map_err(DbError::from)
                })
                .await
        }
        None => {
            // Better Auth: `disableImplicitSignUp && !requestSignUp || disableSignUp`.
            let github = &state.auth().github;
            let sign_up = !(github.disable_sign_up
                || (github.disable_implicit_sign_up && !data.request_sign_up));
            // Signing in may mark the user verified: the writer forgets them then.
            state
                .write(move |w| {
                    flow::sign_in(w, &vault, &linking, sign_up, &account, now)
                        .map_err(DbError::from)
                })
                .await
        }
    };
    let expire_state = state.cookies.expire(&state.cookies.state);
    match decision {
        Ok(Decision::Rejected(why)) => Err(Failure::new(&error_target, why)),
        Ok(Decision::Linked) => Ok(found(&data.callback_url, [expire_state])),
        Ok(Decision::SignIn { user, created }) => {
            // A user GitHub could not vouch for gets the verification mail sign-up sends.
            if created && !user.email_verified && state.auth().send_on_sign_up() {
                crate::auth::handlers::verification::mail_verification(
                    state,
                    req,
                    &user,
                    &user.email,
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
