//! `GET|POST /callback/{provider}`: GitHub sends the browser back here to finish sign-in or
//! linking (spec §8.3); the flow the social sign-in handler started.

use crate::auth::body::{self, Accepts};
use crate::auth::render::redirect;
use crate::auth::service::social::{self as service, CallbackParams, Finished, GITHUB};
use crate::auth::social::flow::{self, CallbackError};
use crate::auth::state::{AuthState, Client};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use utoipa::IntoParams;

/// The callback's query, documented and read by one struct: the first non-empty value of each
/// parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl CallbackQuery {
    fn read(query: &str) -> CallbackParams {
        let query = params(query);
        let param = |name| param(&query, name).map(str::to_owned);
        let Self {
            code,
            state,
            error,
            error_description,
        } = Self {
            code: param("code"),
            state: param("state"),
            error: param("error"),
            error_description: param("error_description"),
        };
        CallbackParams {
            code,
            state,
            error,
            error_description,
        }
    }
}

/// A 302 as Better Auth sends it: `content-type: application/json`, empty body.
fn found(location: &str, cookies: impl IntoIterator<Item = String>) -> HttpResponse {
    redirect(location, cookies)
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

/// Finishes the flow GitHub sends the browser back to: state, code exchange, profile, the
/// linking rules, a session. Every outcome is a 302: to `callbackURL` (`newUserCallbackURL`
/// for a new user) or to the error URL with `?error=…`.
#[utoipa::path(get, path = "/api/auth/callback/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "`github`"), CallbackQuery),
    responses((status = 302, description = "To callbackURL / newUserCallbackURL with the session cookie, or to the error URL with `?error=`")))]
pub async fn callback(
    state: web::Data<AuthState>,
    req: HttpRequest,
    client: Client,
    provider: web::Path<String>,
) -> HttpResponse {
    let params = CallbackQuery::read(req.query_string());
    let cookies = &state.cookies;
    let cookie_state = cookies.read_signed(&req, &cookies.state);
    let expire_state = cookies.expire(&cookies.state);
    match service::finish(&state, &client, &provider, &params, cookie_state).await {
        Ok(Finished::Linked { target }) => found(&target, [expire_state]),
        Ok(Finished::SignedIn { target, session }) => {
            let mut set = vec![expire_state];
            set.extend(state.session_cookies(&session.token, true, &client));
            found(&target, set)
        }
        Err(failure) => {
            let description = failure.description.as_deref();
            let location = flow::error_redirect(&failure.target, &failure.error, description);
            found(&location, failure.clear_state.then_some(expire_state))
        }
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
