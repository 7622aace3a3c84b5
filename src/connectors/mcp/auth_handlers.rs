//! `POST /api/mcp-servers/{id}/authorize`, `GET /api/mcp-servers/callback`,
//! `POST /api/mcp-servers/complete` and `GET /mcp/client-metadata.json`: authorizing a user's
//! MCP server the way connections are authorized. Thin: extract, call `auth_flow`, map.

use super::auth_flow::{self, McpCallback};
use super::error::McpError;
use super::models::ServerView;
use crate::connectors::ConnectorsState;
use crate::platform::error::render;
use crate::trust::Caller;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct McpAuthorizeBody {
    /// Extra scopes to ask for, on top of the server's challenge (or its `scopes_supported`),
    /// the scopes already held and those a 403 `insufficient_scope` asked for.
    scopes: Option<Vec<String>>,
    /// Where the browser goes after the callback; must be on an origin in `CORS_ORIGINS`.
    /// Without it the callback answers with JSON.
    redirect_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct McpAuthorizeResponse {
    /// Send the user's browser here. Valid for `connectors.oauth_flow_ttl_secs`, once.
    url: String,
}

/// Starts authorizing an MCP server for the caller (spec §5.5): discovers its authorization
/// server, registers a client if needed, and returns the authorize URL (PKCE S256, `resource`).
#[utoipa::path(post, path = "/api/mcp-servers/{id}/authorize", tag = "mcp",
    operation_id = "authorize_mcp_server",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "MCP server id")),
    request_body(content = Option<McpAuthorizeBody>, content_type = "application/json",
        description = "Optional; an empty body uses the defaults"),
    responses(
        (status = 200, description = "Authorize URL", body = McpAuthorizeResponse),
        (status = 400, description = "Bad scopes or redirect_to; a discovered URL the SSRF guard refuses (URL_NOT_ALLOWED)", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such server of the caller's", body = crate::platform::error::ErrorBody),
        (status = 502, description = "Discovery or registration failed (MCP_AUTHORIZATION_FAILED), or the server is unreachable", body = crate::platform::error::ErrorBody),
        (status = 504, description = "The server or its authorization server did not answer in time", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn authorize(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, McpError> {
    let body: McpAuthorizeBody = if body.iter().all(u8::is_ascii_whitespace) {
        McpAuthorizeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| McpError::Validation(format!("[body] {e}")))?
    };
    let url = auth_flow::start(&state.ctx, &caller.id, &id, body.scopes, body.redirect_to).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(McpAuthorizeResponse { url }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct McpCallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set by the authorization server when the user declined or the request was refused.
    error: Option<String>,
    #[expect(
        dead_code,
        reason = "documented and accepted (RFC 6749 §4.1.2.1); the answer names `error` alone, never the server's free text"
    )]
    error_description: Option<String>,
    /// RFC 9207: the authorization server's issuer; must match the flow's when present.
    iss: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct McpAuthorizedBody {
    /// `authorized`: redeem `code` with `POST /api/mcp-servers/complete`.
    status: &'static str,
    /// One-time code; only the user who started the flow can redeem it.
    code: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// The authorization server's redirect after the user approved (or declined). Nothing is
/// attached here: the browser that arrives may not be the flow owner's. Redirects to the flow's
/// `redirect_to` with `?status=authorized&code=…` (redeemed with `POST /api/mcp-servers/complete`)
/// or `?error=<code>`; answers with JSON when the flow named no `redirect_to`.
#[utoipa::path(get, path = "/api/mcp-servers/callback", tag = "mcp",
    operation_id = "mcp_authorization_callback",
    params(McpCallbackQuery),
    responses(
        (status = 302, description = "Back to redirect_to, with status and code, or error, in the query"),
        (status = 200, description = "Authorized (no redirect_to)", body = McpAuthorizedBody),
        (status = 400, description = "Unknown, expired or replayed state; iss mismatch; declined", body = crate::platform::error::ErrorBody),
        (status = 502, description = "The token endpoint failed", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn callback(
    state: web::Data<ConnectorsState>,
    query: web::Query<McpCallbackQuery>,
) -> HttpResponse {
    let q = query.into_inner();
    let result = auth_flow::finish(
        &state.ctx,
        McpCallback {
            code: q.code,
            state: q.state,
            error: q.error,
            iss: q.iss,
        },
    )
    .await;
    let origins = &state.ctx.config.server.cors_origins;
    let mut response = match result {
        Ok(done) => match done.redirect_to {
            Some(to) => redirect(
                origins,
                &to,
                &[("status", "authorized"), ("code", done.code.expose())],
            ),
            None => HttpResponse::Ok().json(McpAuthorizedBody {
                status: "authorized",
                code: done.code.expose().to_owned(),
                expires_at: done.expires_at,
            }),
        },
        Err(failure) => match failure.redirect_to {
            Some(to) => {
                failure.error.log();
                redirect(origins, &to, &[("error", &failure.error.redirect_code())])
            }
            None => failure.error.error_response(),
        },
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `to` (checked when the flow started) with `pairs` added, checked again as it leaves.
fn redirect(cors_origins: &[String], to: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(to) else {
        return render(
            StatusCode::BAD_REQUEST,
            "INVALID_REDIRECT",
            "redirect_to is not a URL",
        );
    };
    url.query_pairs_mut().extend_pairs(pairs);
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
pub(crate) struct McpCompleteBody {
    /// The one-time `code` the callback handed to `redirect_to` (or answered with).
    code: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct McpCompletedBody {
    /// `authorized`.
    status: &'static str,
    server: ServerView,
}

/// Finishes authorizing: redeems the callback's one-time code for the caller, who must be the
/// user who started the flow. Anyone else gets the same 404 as for an unknown code, and the
/// code is destroyed.
#[utoipa::path(post, path = "/api/mcp-servers/complete", tag = "mcp",
    operation_id = "complete_mcp_authorization",
    security(("bearer" = [])),
    request_body = McpCompleteBody,
    responses(
        (status = 200, description = "Authorized; the tokens are stored sealed", body = McpCompletedBody),
        (status = 400, description = "Malformed body, or the code expired", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "Unknown, used or someone else's code; or the server is gone", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn complete(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    body: web::Bytes,
) -> Result<HttpResponse, McpError> {
    let body: McpCompleteBody =
        serde_json::from_slice(&body).map_err(|e| McpError::Validation(format!("[body] {e}")))?;
    let server = auth_flow::complete(&state.ctx, &caller.id, &body.code).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(McpCompletedBody {
            status: "authorized",
            server,
        }))
}

/// Our OAuth Client ID Metadata Document: authorization servers that support CIMD fetch it,
/// and its URL is our `client_id` there (used only when `CONNECTORS_URL` is https).
#[utoipa::path(get, path = "/mcp/client-metadata.json", tag = "mcp",
    operation_id = "mcp_client_metadata",
    responses(
        (status = 200, description = "The client metadata document", body = Object),
    ))]
pub(crate) async fn client_metadata(state: web::Data<ConnectorsState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(auth_flow::client_metadata(&state.ctx))
}
