//! `GET /api/auth/jwks` and `GET /.well-known/jwks.json`: the same document, rendered once per
//! key-set refresh and served from memory, cacheable for a few minutes and readable from any
//! origin (it is public by nature).

use crate::auth::AuthState;
use crate::auth::config::JWKS_MAX_AGE_SECS;
use crate::platform::error::ErrorBody;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// RFC 7517 key set.
#[derive(Serialize, ToSchema)]
pub(crate) struct JwksBody {
    /// `{alg, crv?, kty, x|n,e|x,y, kid}` per key, as Better Auth publishes them.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// The auth role's public signing keys (Better Auth's JWT plugin path).
#[utoipa::path(get, path = "/api/auth/jwks", tag = "auth",
    responses(
        (status = 200, description = "Every key that signs or signed a still-valid token", body = JwksBody),
        (status = 503, description = "The key store could not be read", body = ErrorBody),
    ))]
pub(crate) async fn jwks(state: web::Data<AuthState>) -> HttpResponse {
    respond(&state).await
}

/// The same document at the well-known path downstream verifiers look for.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses(
        (status = 200, description = "Same document as /api/auth/jwks", body = JwksBody),
        (status = 503, description = "The key store could not be read", body = ErrorBody),
    ))]
pub(crate) async fn well_known_jwks(state: web::Data<AuthState>) -> HttpResponse {
    respond(&state).await
}

async fn respond(state: &AuthState) -> HttpResponse {
    match state.jwt.jwks_document().await {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((
                header::CACHE_CONTROL,
                format!("public, max-age={JWKS_MAX_AGE_SECS}"),
            ))
            // Public keys: any origin may read them. For a configured CORS origin the CORS
            // middleware replaces this with the origin itself.
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .body(body),
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}
