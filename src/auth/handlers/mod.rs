//! The auth role's routes under `/api/auth`, the CSRF guard in front of them, and the OpenAPI
//! document that lists them.

mod callback;
mod linked_accounts;
mod misc;
mod reset;
mod session;
mod sign;
mod social;
mod user;
mod verification;

use crate::auth::error::{AuthError, Code};
use crate::auth::state::AuthState;
use crate::platform::error::ErrorBody;
use crate::platform::openapi;
use crate::platform::{redirect, route};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, ResponseError, web};
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The JWKS routes come first (the scope below would answer 404 for them). They are public,
    // served from memory and read by every downstream verifier, so they sit outside the
    // per-client rate limits.
    crate::auth::jwt::configure(cfg);
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .service(
            web::scope("/api/auth")
                // The last wrap runs first: rate limits before origin checks before handlers;
                // the redirect check sees each response last.
                .wrap(from_fn(redirect_guard))
                .wrap(from_fn(origin_guard))
                .wrap(from_fn(crate::auth::rate_limit::enforce))
                .configure(account_routes)
                .configure(flow_routes),
        );
}

/// Signing in and out, sessions, and the signed-in user's own account.
fn account_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ok", web::get().to(misc::ok))
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
        .route("/update-user", web::post().to(user::update_user))
        .route("/change-password", web::post().to(user::change_password))
        .route("/change-email", web::post().to(user::change_email))
        .route("/delete-user", web::post().to(user::delete_user));
}

/// Social sign-in and linking, linked accounts, email verification and password reset.
fn flow_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sign-in/social", web::post().to(social::sign_in_social))
        .route("/callback/{provider}", web::get().to(callback::callback))
        .route(
            "/callback/{provider}",
            web::post().to(callback::callback_post),
        )
        .route("/link-social", web::post().to(social::link_social))
        .route(
            "/list-accounts",
            web::get().to(linked_accounts::list_accounts),
        )
        .route(
            "/unlink-account",
            web::post().to(linked_accounts::unlink_account),
        )
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
        .route("/reset-password", web::post().to(reset::reset_password));
}

#[derive(OpenApi)]
#[openapi(
    paths(
        misc::ok, misc::error_page,
        sign::sign_up, sign::sign_in, sign::sign_out,
        session::get_session, session::list_sessions, session::token, session::revoke_session,
        session::revoke_sessions, session::revoke_other_sessions,
        user::update_user, user::change_password, user::change_email, user::delete_user,
        social::sign_in_social, callback::callback, callback::callback_post, social::link_social,
        linked_accounts::list_accounts, linked_accounts::unlink_account,
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

/// Which origin rule a route gets (spec §5). Keyed on the matched route pattern, never on the
/// raw path: the router reads `/sign-in/%65mail` as `/sign-in/email`, and so must the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginRule {
    /// The form-CSRF rule of sign-in and sign-up, enforced even without cookies.
    Login,
    /// GitHub's form_post arrives cross-site; the POST callback changes nothing and only
    /// redirects to the GET form, which the state cookie and row protect.
    Exempt,
    /// The cookie-bearing-write rule: every other route, and paths no route serves.
    Write,
}

pub(crate) fn origin_rule(pattern: Option<&str>) -> OriginRule {
    match pattern {
        Some("/api/auth/sign-in/email" | "/api/auth/sign-up/email") => OriginRule::Login,
        Some("/api/auth/callback/{provider}") => OriginRule::Exempt,
        _ => OriginRule::Write,
    }
}

/// Origin checks before any handler runs (spec §5): the form-CSRF rule on sign-in/sign-up, the
/// cookie-bearing-write rule everywhere else.
async fn origin_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AuthState>>() {
        let checked = match origin_rule(route::matched_pattern(&req).as_deref()) {
            OriginRule::Login => state.origins.check_login(req.request()),
            OriginRule::Exempt => Ok(()),
            OriginRule::Write => state.origins.check_write(req.request()),
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

/// Every redirect the auth routes answer passes here, on the exact `Location` that leaves the
/// process: a relative path that normalises to itself, or a URL on a trusted origin. A refused
/// one (a target that passed the input checks but was bent by building it) becomes a 403 that
/// sets no cookie.
async fn redirect_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AuthState>>().cloned();
    let res = next.call(req).await?;
    let (Some(state), Some(location)) = (state, res.headers().get(header::LOCATION)) else {
        return Ok(res.map_into_left_body());
    };
    let checked = match location.to_str() {
        Ok(location) => redirect::check_location(location, |url| trusted_target(&state, url)),
        Err(_) => Err(redirect::Refused::Characters),
    };
    match checked {
        Ok(()) => Ok(res.map_into_left_body()),
        Err(why) => {
            tracing::warn!(reason = %why, "refused a redirect target after building it");
            let refused = AuthError::forbidden(Code::InvalidRedirectUrl).error_response();
            Ok(res.into_response(refused).map_into_right_body())
        }
    }
}

/// Where an auth response may send a browser: a trusted origin, or (starting GitHub sign-in) the
/// configured GitHub authorize endpoint itself, path included, when GitHub sign-in is on.
fn trusted_target(state: &AuthState, url: &url::Url) -> bool {
    if state.origins.is_trusted(url.as_str()) {
        return true;
    }
    let github = &state.auth().github;
    github.client_id.is_some()
        && url::Url::parse(&github.authorize_url).is_ok_and(|authorize| {
            authorize.origin() == url.origin() && authorize.path() == url.path()
        })
}

#[cfg(test)]
mod tests {
    use crate::auth::body::{Fields, FromFields};
    use std::collections::BTreeSet;
    use utoipa::openapi::{RefOr, schema::Schema};

    /// The names a body type reads through [`Fields`], plus `extra` (read off the whole body),
    /// must be exactly the properties its OpenAPI schema lists.
    fn documented_as_read<T: FromFields + utoipa::PartialSchema>(extra: &[&str]) {
        let empty = serde_json::json!({});
        let mut f = Fields::new(&empty);
        T::from_fields(&mut f);
        let mut read: BTreeSet<String> = f.asked.into_iter().collect();
        read.extend(extra.iter().map(|s| (*s).to_owned()));
        let RefOr::T(Schema::Object(schema)) = T::schema() else {
            panic!("{}: not an object schema", std::any::type_name::<T>());
        };
        let documented: BTreeSet<String> = schema.properties.keys().cloned().collect();
        assert_eq!(read, documented, "{}", std::any::type_name::<T>());
    }

    #[test]
    fn every_body_is_documented_as_it_is_read() {
        use super::{linked_accounts, reset, session, sign, social, user, verification};
        documented_as_read::<sign::SignUpBody>(&[]);
        documented_as_read::<sign::SignInBody>(&[]);
        documented_as_read::<user::UpdateUserBody>(&[]);
        documented_as_read::<user::ChangePasswordBody>(&[]);
        documented_as_read::<user::ChangeEmailBody>(&[]);
        documented_as_read::<user::DeleteUserBody>(&[]);
        documented_as_read::<linked_accounts::UnlinkAccountBody>(&[]);
        documented_as_read::<session::RevokeSessionBody>(&[]);
        documented_as_read::<verification::SendVerificationBody>(&[]);
        documented_as_read::<reset::RequestResetBody>(&[]);
        documented_as_read::<reset::ResetPasswordBody>(&[]);
        documented_as_read::<social::SocialSignInBody>(&["scopes"]);
        documented_as_read::<social::LinkSocialBody>(&["scopes"]);
    }
}
