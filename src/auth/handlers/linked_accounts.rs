//! `GET /list-accounts` and `POST /unlink-account` (spec §6.18–6.19): the accounts a user signs
//! in with, and removing one (never the last).

use crate::auth::body::{self, Accepts, Fields, FromFields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::AccountView;
use crate::auth::render::{StatusBody, status_ok};
use crate::auth::service::linked_accounts as service;
use crate::auth::state::{AuthState, SignedIn};
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::ToSchema;

/// The caller's accounts (credential and GitHub), without secrets.
#[utoipa::path(get, path = "/api/auth/list-accounts", tag = "auth",
    responses(
        (status = 200, description = "The caller's accounts", body = Vec<AccountView>),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody)))]
pub async fn list_accounts(
    state: web::Data<AuthState>,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    let rows = service::list_accounts(&state, &signed_in.user.id).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(AccountView::from).collect::<Vec<_>>()))
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UnlinkAccountBody {
    /// Better Auth 1.7: the account's row id. With `providerId` (≤ 1.6): the provider's id.
    account_id: Option<String>,
    /// The ≤ 1.6 shape: unlink this provider's account.
    provider_id: Option<String>,
}

impl FromFields for UnlinkAccountBody {
    fn from_fields(f: &mut Fields<'_>) -> Self {
        let provider_id = f.opt_string("providerId");
        let account_id = if provider_id.is_some() {
            f.opt_string("accountId")
        } else {
            f.string("accountId")
        };
        Self {
            account_id,
            provider_id,
        }
    }
}

/// Removes one of the caller's accounts; never the last one. Needs a fresh session.
#[utoipa::path(post, path = "/api/auth/unlink-account", tag = "auth", request_body = UnlinkAccountBody,
    responses(
        (status = 200, description = "Unlinked", body = StatusBody),
        (status = 400, description = "FAILED_TO_UNLINK_LAST_ACCOUNT, ACCOUNT_NOT_FOUND, VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "SESSION_NOT_FRESH", body = ErrorBody)))]
pub async fn unlink_account(
    state: web::Data<AuthState>,
    req: HttpRequest,
    bytes: Bytes,
    signed_in: SignedIn,
) -> AuthResult<HttpResponse> {
    if !state.is_fresh(&signed_in.session) {
        return Err(AuthError::forbidden(Code::SessionNotFresh));
    }
    let body = body::parse(&req, &bytes, Accepts::Json)?;
    let UnlinkAccountBody {
        account_id,
        provider_id,
    } = UnlinkAccountBody::read(&body)?;
    service::unlink_account(&state, &signed_in.user.id, provider_id, account_id).await?;
    Ok(status_ok())
}
