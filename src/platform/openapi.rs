//! Each role's OpenAPI document (`/openapi.json`): the role's own paths plus the health routes.

use crate::platform::health::HealthApi;
use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

/// Merges the health routes into a role's document and names it.
pub fn document(mut role_doc: Document, title: &str) -> Document {
    role_doc.merge(HealthApi::openapi());
    role_doc.merge(crate::jobs::metrics::MetricsApi::openapi());
    role_doc.info.title = title.to_owned();
    role_doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    role_doc
}

pub fn respond(doc: &Document) -> HttpResponse {
    HttpResponse::Ok().json(doc)
}
