//! `GET /api/me`: the verified caller, as the connectors role sees them. The first endpoint
//! behind `Caller`, and the simplest check that a token from the auth role is trusted here.

use crate::trust::Caller;
use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub(crate) struct MeBody {
    /// The user id (`sub`).
    id: String,
    email: Option<String>,
    name: Option<String>,
}

/// The caller the bearer token identifies.
#[utoipa::path(get, path = "/api/me", tag = "connectors",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The verified caller", body = MeBody),
        (status = 401, description = "No token, or one that does not verify",
            body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn me(caller: Caller) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(MeBody {
            id: caller.id.into_string(),
            email: caller.email,
            name: caller.name,
        })
}
