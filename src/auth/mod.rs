//! The auth role: Better Auth-compatible accounts, sessions and cookies, served under
//! `/api/auth`. Everything in it is private but its state and `configure`.

pub mod jwt;

use crate::platform::openapi;
use crate::platform::state::Platform;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// What the auth role's handlers share.
pub struct AuthState {
    document: utoipa::openapi::OpenApi,
    /// Signing keys and the JWKS; `jwt.sign_for_user(..)` mints the tokens.
    pub jwt: std::sync::Arc<jwt::KeyStore>,
}

impl AuthState {
    pub fn new(platform: &Platform) -> anyhow::Result<Self> {
        Ok(Self {
            document: openapi::document(
                AuthApi::openapi().merge_from(jwt::JwtApi::openapi()),
                "switchboard auth",
            ),
            jwt: jwt::KeyStore::start(platform)?,
        })
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .route("/api/auth/ok", web::get().to(ok));
    jwt::configure(cfg);
}

#[derive(OpenApi)]
#[openapi(paths(ok), components(schemas(OkBody)))]
struct AuthApi;

async fn openapi_json(state: web::Data<AuthState>) -> HttpResponse {
    openapi::respond(&state.document)
}

#[derive(Serialize, ToSchema)]
struct OkBody {
    ok: bool,
}

/// Better Auth's liveness probe of the auth API.
#[utoipa::path(get, path = "/api/auth/ok", tag = "auth",
    responses((status = 200, description = "The auth API answers", body = OkBody)))]
async fn ok() -> HttpResponse {
    HttpResponse::Ok().json(OkBody { ok: true })
}
