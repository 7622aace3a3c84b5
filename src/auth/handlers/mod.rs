//! The auth role's routes under `/api/auth`, the CSRF guard in front of them, and the OpenAPI
//! document that lists them.

mod account;
mod accounts;
mod callback;
mod misc;
mod reset;
mod session;
mod sign;
mod social;
pub(crate) mod verification;

use crate::auth::state::AuthState;
use crate::platform::error::ErrorBody;
use crate::platform::openapi;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError, web};
use serde::Serialize;
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The JWKS routes come first (the scope below would answer 404 for them). They are public,
    // served from memory and read by every downstream verifier, so they sit outside the
    // per-client rate limits.
    crate::auth::jwt::configure(cfg);
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .service(
            web::scope("/api/auth")
                // The last wrap runs first: rate limits before origin checks before handlers.
                .wrap(from_fn(origin_guard))
                .wrap(from_fn(crate::auth::rate_limit::enforce))
                .route("/ok", web::get().to(misc::ok))
                .route("/error", web::get().to(misc::error_page))
                .route("/sign-up/email", web::post().to(sign::sign_up))
                .route("/sign-in/email", web::post().to(sign::sign_in))
                .route("/sign-out", web::post().to(sign::sign_out))
                .route("/get-session", web::get().to(session::get_session))
                .route("/get-session", web::post().to(session::post_get_session))
                .route("/list-sessions", web::get().to(session::list_sessions))
                .route("/token", web::get().to(session::token))
                .route("/revoke-session", web::post().to(session::revoke_session))
                .route("/revoke-sessions", web::post().to(session::revoke_sessions))
                .route(
                    "/revoke-other-sessions",
                    web::post().to(session::revoke_other_sessions),
                )
                .route("/update-user", web::post().to(account::update_user))
                .route("/change-password", web::post().to(account::change_password))
                .route("/change-email", web::post().to(account::change_email))
                .route("/delete-user", web::post().to(account::delete_user))
                .route("/sign-in/social", web::post().to(social::sign_in_social))
                .route("/callback/{provider}", web::get().to(callback::callback))
                .route(
                    "/callback/{provider}",
                    web::post().to(callback::callback_post),
                )
                .route("/link-social", web::post().to(social::link_social))
                .route("/list-accounts", web::get().to(accounts::list_accounts))
                .route("/unlink-account", web::post().to(accounts::unlink_account))
                .route(
                    "/send-verification-email",
                    web::post().to(verification::send_verification_email),
                )
                .route("/verify-email", web::get().to(verification::verify_email))
                .route(
                    "/request-password-reset",
                    web::post().to(reset::request_password_reset),
                )
                .route("/forget-password", web::post().to(reset::forget_password))
                .route(
                    "/reset-password/{token}",
                    web::get().to(reset::reset_password_callback),
                )
                .route("/reset-password", web::post().to(reset::reset_password)),
        );
}

#[derive(OpenApi)]
#[openapi(
    paths(
        misc::ok, misc::error_page,
        sign::sign_up, sign::sign_in, sign::sign_out,
        session::get_session, session::list_sessions, session::token, session::revoke_session,
        session::revoke_sessions, session::revoke_other_sessions,
        account::update_user, account::change_password, account::change_email, account::delete_user,
        social::sign_in_social, callback::callback, callback::callback_post, social::link_social,
        accounts::list_accounts, accounts::unlink_account,
        verification::send_verification_email, verification::verify_email,
        reset::request_password_reset, reset::forget_password, reset::reset_password_callback,
        reset::reset_password,
    ),
    components(schemas(ErrorBody)),
    tags((name = "auth", description = "Better Auth-compatible accounts and sessions"))
)]
struct AuthApi;

pub fn document() -> utoipa::openapi::OpenApi {
    openapi::document(
        AuthApi::openapi().merge_from(crate::auth::jwt::JwtApi::openapi()),
        "switchboard auth",
    )
}

async fn openapi_json(state: web::Data<AuthState>) -> HttpResponse {
    openapi::respond(&state.document)
}

/// Origin checks before any handler runs (spec §5): the form-CSRF rule on sign-in/sign-up, the
/// cookie-bearing-write rule everywhere else.
async fn origin_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AuthState>>() {
        let path = req.path();
        let checked = if path.ends_with("/sign-in/email") || path.ends_with("/sign-up/email") {
            state.origins.check_login(req.request())
        } else if path.starts_with("/api/auth/callback/") {
            // GitHub's form_post arrives cross-site; the POST callback changes nothing and only
            // redirects to the GET form, which the state cookie and row protect.
            Ok(())
        } else {
            state.origins.check_write(req.request())
        };
        if let Err(err) = checked {
            return Ok(req
                .into_response(err.error_response())
                .map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// A JSON response carrying `Set-Cookie` headers, in order.
pub(crate) fn with_cookies(
    mut builder: HttpResponseBuilder,
    cookies: impl IntoIterator<Item = String>,
    body: &impl Serialize,
) -> HttpResponse {
    for cookie in cookies {
        builder.append_header((header::SET_COOKIE, cookie));
    }
    builder.json(body)
}

/// Better Auth's `ctx.redirect`: 302 with `Location`, `content-type: application/json` and an
/// empty body, plus any `Set-Cookie` headers.
pub(crate) fn redirect(location: &str, cookies: impl IntoIterator<Item = String>) -> HttpResponse {
    let mut builder = HttpResponse::Found();
    builder
        .insert_header((header::LOCATION, location))
        .insert_header((header::CONTENT_TYPE, "application/json"));
    for cookie in cookies {
        builder.append_header((header::SET_COOKIE, cookie));
    }
    builder.finish()
}
