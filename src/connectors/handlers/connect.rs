//! `POST /api/connections/{provider}/authorize`, `GET /api/connections/{provider}/callback` and
//! `POST /api/connections/complete`.

use crate::connectors::ConnectorsState;
use crate::connectors::connect::{self, Callback};
use crate::connectors::error::ConnectorsError;
use crate::connectors::models::ConnectionView;
use crate::platform::error::render;
use crate::trust::Caller;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorizeBody {
    /// Scopes to ask for; the provider's defaults when absent or empty.
    scopes: Option<Vec<String>>,
    /// Where the browser goes after the callback; must be on an origin in `CORS_ORIGINS`.
    /// Without it the callback answers with JSON.
    redirect_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AuthorizeResponse {
    /// Send the user's browser here. Valid for `connectors.oauth_flow_ttl_secs`, once.
    url: String,
}

/// Starts connecting an account: returns the provider's authorize URL.
#[utoipa::path(post, path = "/api/connections/{provider}/authorize", tag = "connectors",
    security(("bearer" = [])),
    params(("provider" = String, Path, description = "Provider id, e.g. `linear`")),
    request_body(content = Option<AuthorizeBody>, content_type = "application/json",
        description = "Optional; an empty body uses the defaults"),
    responses(
        (status = 200, description = "Authorize URL", body = AuthorizeResponse),
        (status = 400, description = "Bad scopes or redirect_to", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "Unknown provider", body = crate::platform::error::ErrorBody),
        (status = 409, description = "A built-in provider that is not configured on this server (PROVIDER_NOT_CONFIGURED; the message names the settings)", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn authorize(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    provider: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConnectorsError> {
    // Read by hand so an empty body means "defaults" while malformed JSON is still a 400.
    let body: AuthorizeBody = if body.iter().all(u8::is_ascii_whitespace) {
        AuthorizeBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ConnectorsError::Validation(format!("[body] {e}")))?
    };
    if let Some(unconfigured) = state.ctx.registry.unconfigured(&provider) {
        return Err(ConnectorsError::ProviderNotConfigured(
            unconfigured.message(),
        ));
    }
    let url = connect::start(
        &state.ctx,
        &caller.id,
        &provider,
        body.scopes,
        body.redirect_to,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(AuthorizeResponse { url }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the user declined or the request was refused.
    error: Option<String>,
    #[expect(
        dead_code,
        reason = "documented and accepted; the page shows `error` alone"
    )]
    error_description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectedBody {
    /// `connected`.
    status: &'static str,
    connection: ConnectionView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AuthorizedBody {
    /// `authorized`: redeem `code` with `POST /api/connections/complete`.
    status: &'static str,
    /// One-time code; only the user who started the flow can redeem it.
    code: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// The provider's redirect after the user approved (or declined). Nothing is connected here:
/// the browser that arrives may not be the flow owner's. Redirects to the flow's `redirect_to`
/// with `?status=authorized&code=…` (a one-time code the owner redeems with
/// `POST /api/connections/complete`) or `?error=<code>`; answers with JSON when the flow named
/// no `redirect_to` or the state is unknown.
#[utoipa::path(get, path = "/api/connections/{provider}/callback", tag = "connectors",
    params(("provider" = String, Path, description = "Provider id"), CallbackQuery),
    responses(
        (status = 302, description = "Back to redirect_to, with status and code, or error, in the query"),
        (status = 200, description = "Authorized (no redirect_to)", body = AuthorizedBody),
        (status = 400, description = "Unknown, expired or replayed state; declined", body = crate::platform::error::ErrorBody),
        (status = 404, description = "Unknown provider", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The provider failed", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn callback(
    state: web::Data<ConnectorsState>,
    provider: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let query = query.into_inner();
    let result = connect::finish(
        &state.ctx,
        &provider,
        Callback {
            code: query.code,
            state: query.state,
            error: query.error,
        },
    )
    .await;
    let mut response = match result {
        Ok(done) => match done.redirect_to {
            Some(to) => redirect(
                &state.ctx.config.server.cors_origins,
                &to,
                &[("status", "authorized"), ("code", done.code.expose())],
            ),
            None => HttpResponse::Ok().json(AuthorizedBody {
                status: "authorized",
                code: done.code.expose().to_owned(),
                expires_at: done.expires_at,
            }),
        },
        Err(failure) => match failure.redirect_to {
            Some(to) => {
                // The redirect carries only a code: the detail of an internal failure goes to
                // the log, inside the request's span (request id), as the JSON path does.
                failure.error.log();
                redirect(
                    &state.ctx.config.server.cors_origins,
                    &to,
                    &[("error", &failure.error.redirect_code())],
                )
            }
            None => failure.error.error_response(),
        },
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    // The callback URL carries the code; keep it out of any Referer.
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Every redirect this role sends is built here: `to` (a `redirect_to` checked when the flow
/// started) with `pairs` added to its query, and the result checked once more as it leaves.
fn redirect(cors_origins: &[String], to: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(to) else {
        return render(
            StatusCode::BAD_REQUEST,
            "INVALID_REDIRECT",
            "redirect_to is not a URL",
        );
    };
    url.query_pairs_mut().extend_pairs(pairs);
    // The shared redirect check, on the exact Location, after it is built.
    let trusted = |u: &url::Url| {
        let origin = u.origin().ascii_serialization();
        cors_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
    };
    if let Err(why) = crate::platform::redirect::check_location(url.as_str(), trusted) {
        tracing::warn!(reason = %why, "refused a redirect target after building it");
        return render(
            StatusCode::BAD_REQUEST,
            "INVALID_REDIRECT",
            "redirect_to is not allowed",
        );
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .finish()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    /// The one-time `code` the callback handed to `redirect_to` (or answered with).
    code: String,
}

/// Finishes connecting: redeems the callback's one-time code for the caller, who must be the
/// user who started the flow. Any other caller gets the same 404 as for an unknown code, and
/// the code is destroyed (its grant withdrawn at the provider).
#[utoipa::path(post, path = "/api/connections/complete", tag = "connectors",
    security(("bearer" = [])),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Connected", body = ConnectedBody),
        (status = 400, description = "Malformed body, or the code expired", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 403, description = "The token's user no longer exists", body = crate::platform::error::ErrorBody),
        (status = 404, description = "Unknown, used or someone else's code", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn complete(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    body: web::Bytes,
) -> Result<HttpResponse, ConnectorsError> {
    let body: CompleteBody = serde_json::from_slice(&body)
        .map_err(|e| ConnectorsError::Validation(format!("[body] {e}")))?;
    let connection = connect::complete(&state.ctx, &caller.id, &body.code).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ConnectedBody {
            status: "connected",
            connection: connection.into(),
        }))
}
