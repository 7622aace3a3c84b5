//! The connectors role: a resource server that trusts only JWTs verified against the auth role's
//! JWKS. It never names the auth module or reads auth-owned tables.

mod me;

use crate::platform::openapi;
use crate::platform::state::Platform;
use crate::trust::{HttpJwksSource, Verifier};
use actix_web::{HttpResponse, web};
use anyhow::Context;
use std::sync::Arc;
use utoipa::OpenApi;

/// What the connectors role's handlers share.
pub struct ConnectorsState {
    document: utoipa::openapi::OpenApi,
    /// Verifies callers against the auth role's JWKS (fetched over HTTP, also in `--role all`).
    verifier: web::Data<Verifier>,
}

impl ConnectorsState {
    pub fn new(platform: &Platform) -> anyhow::Result<Self> {
        let config = &platform.config;
        let keys = HttpJwksSource::new(config.connectors.jwks_url.clone(), platform.clock.clone())
            .context("building the JWKS client")?;
        let verifier = Verifier::new(
            Arc::new(keys),
            config.connectors_jwt_issuer(),
            config.connectors_jwt_audience(),
            platform.clock.clone(),
        );
        Ok(Self {
            document: openapi::document(ConnectorsApi::openapi(), "switchboard connectors"),
            verifier: web::Data::new(verifier),
        })
    }

    /// The verifier the `Caller` extractor finds in app data; mounted next to this state.
    pub fn verifier(&self) -> web::Data<Verifier> {
        self.verifier.clone()
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .route("/api/me", web::get().to(me::me));
}

#[derive(OpenApi)]
#[openapi(paths(me::me), components(schemas(me::MeBody)))]
struct ConnectorsApi;

async fn openapi_json(state: web::Data<ConnectorsState>) -> HttpResponse {
    openapi::respond(&state.document)
}
