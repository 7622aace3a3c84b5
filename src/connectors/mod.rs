//! The connectors role: a resource server that trusts only JWTs verified against the auth role's
//! JWKS. It never names the auth module or reads auth-owned tables.

use crate::platform::openapi;
use crate::platform::state::Platform;
use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

/// What the connectors role's handlers share.
pub struct ConnectorsState {
    document: utoipa::openapi::OpenApi,
}

impl ConnectorsState {
    pub fn new(_platform: &Platform) -> anyhow::Result<Self> {
        Ok(Self {
            document: openapi::document(ConnectorsApi::openapi(), "switchboard connectors"),
        })
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json));
}

#[derive(OpenApi)]
#[openapi()]
struct ConnectorsApi;

async fn openapi_json(state: web::Data<ConnectorsState>) -> HttpResponse {
    openapi::respond(&state.document)
}
