//! `GET /ok` and `GET /error`.

use crate::auth::mail::escape_html;
use crate::auth::state::AuthState;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct OkBody {
    ok: bool,
}

/// Better Auth's liveness probe of the auth API.
#[utoipa::path(get, path = "/api/auth/ok", tag = "auth",
    responses((status = 200, description = "The auth API answers", body = OkBody)))]
pub async fn ok() -> HttpResponse {
    HttpResponse::Ok().json(OkBody { ok: true })
}

#[derive(Deserialize, IntoParams)]
pub struct ErrorQuery {
    error: Option<String>,
    error_description: Option<String>,
}

/// Where failed redirects land: an error page in development, a redirect to `/` in production.
#[utoipa::path(get, path = "/api/auth/error", tag = "auth", params(ErrorQuery),
    responses(
        (status = 200, description = "An HTML error page (development and test)", content_type = "text/html"),
        (status = 302, description = "Production: redirect to `/?error=…`")))]
pub async fn error_page(
    state: web::Data<AuthState>,
    query: web::Query<ErrorQuery>,
) -> HttpResponse {
    let code = query
        .error
        .as_deref()
        .filter(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_'-".contains(ch))
        })
        .unwrap_or("UNKNOWN");
    if state.production() {
        let mut location = url::form_urlencoded::Serializer::new(String::new());
        location.append_pair("error", code);
        if let Some(d) = &query.error_description {
            location.append_pair("error_description", d);
        }
        return HttpResponse::Found()
            .insert_header((header::LOCATION, format!("/?{}", location.finish())))
            .finish();
    }
    let description = query
        .error_description
        .as_deref()
        .map(escape_html)
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><title>Authentication error</title></head><body>\
             <h1>Authentication error</h1><p><code>{}</code></p><p>{description}</p></body></html>",
            escape_html(code)
        ))
}
