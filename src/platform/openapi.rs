//! Each role's OpenAPI document (`/openapi.json`): the role's own paths plus the health routes,
//! and the security schemes its operations name, defined once here.

use crate::platform::health::HealthApi;
use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The scheme name `#[utoipa::path(security(("bearer" = [])))]` refers to: a JWT from the auth
/// role's `/api/auth/token`, verified against its JWKS.
pub const BEARER: &str = "bearer";

/// Merges the health routes into a role's document, names it, and defines the security schemes
/// its operations use.
pub fn document(mut role_doc: Document, title: &str) -> Document {
    role_doc.merge(HealthApi::openapi());
    role_doc.merge(crate::jobs::metrics::MetricsApi::openapi());
    role_doc.info.title = title.to_owned();
    role_doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    if uses_scheme(&role_doc, BEARER) {
        let mut bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        bearer.description = Some(
            "A JWT from the auth role (`GET /api/auth/token` or the `set-auth-jwt` header), \
             verified against its JWKS"
                .to_owned(),
        );
        role_doc
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(bearer));
    }
    role_doc
}

/// Whether any operation (or the document) requires the scheme `name`.
fn uses_scheme(doc: &Document, name: &str) -> bool {
    let Ok(value) = serde_json::to_value(doc) else {
        return false;
    };
    let names = |security: &serde_json::Value| {
        security
            .as_array()
            .into_iter()
            .flatten()
            .any(|req| req.get(name).is_some())
    };
    names(&value["security"])
        || value["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(|item| item.as_object())
            .flat_map(|ops| ops.values())
            .any(|op| names(&op["security"]))
}

pub fn respond(doc: &Document) -> HttpResponse {
    HttpResponse::Ok().json(doc)
}
