//! `GET /list-accounts` and `POST /unlink-account` (spec §6.18–6.19): the accounts a user signs
//! in with, and removing one (never the last).

use crate::auth::body::{self, Accepts, Fields};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::social::store::{self, AccountView};
use crate::auth::state::{AuthState, SignedIn};
use crate::db::DbError;
use crate::platform::error::ErrorBody;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
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
    let user_id = signed_in.user.id;
    let rows = state
        .db(move |conn| store::accounts_of(conn, &user_id).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(AccountView::from).collect::<Vec<_>>()))
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct UnlinkAccountBody {
    /// Better Auth 1.7: the account's row id. With `providerId` (≤ 1.6): the provider's id.
    account_id: Option<String>,
    /// The ≤ 1.6 shape: unlink this provider's account.
    provider_id: Option<String>,
}

/// Removes one of the caller's accounts; never the last one. Needs a fresh session.
#[utoipa::path(post, path = "/api/auth/unlink-account", tag = "auth", request_body = UnlinkAccountBody,
    responses(
        (status = 200, description = "Unlinked", body = super::session::StatusBody),
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
    let mut f = Fields::new(&body);
    let provider_id = f.opt_string("providerId");
    let account_id = if provider_id.is_some() {
        f.opt_string("accountId")
    } else {
        f.string("accountId")
    };
    f.finish()?;
    let allow_all = state.auth().account_linking.allow_unlinking_all;
    let user_id = signed_in.user.id;
    let outcome = state
        .db(move |conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                if !store::lock_user(conn, &user_id)? {
                    return Ok(Err(Code::AccountNotFound));
                }
                let accounts = store::accounts_of(conn, &user_id)?;
                if accounts.len() == 1 && !allow_all {
                    return Ok(Err(Code::FailedToUnlinkLastAccount));
                }
                let found = accounts.iter().find(|a| match &provider_id {
                    // ≤ 1.6: the provider, and the provider's account id if given.
                    Some(p) => {
                        a.provider_id == *p
                            && account_id.as_ref().is_none_or(|id| a.account_id == *id)
                    }
                    // 1.7: the row id.
                    None => account_id.as_ref().is_some_and(|id| a.id == *id),
                });
                let Some(found) = found else {
                    return Ok(Err(Code::AccountNotFound));
                };
                store::delete_account(conn, &user_id, &found.id)?;
                Ok(Ok(()))
            })
            .map_err(|e: diesel::result::Error| DbError::from(e))
        })
        .await?;
    outcome.map_err(AuthError::bad_request)?;
    Ok(HttpResponse::Ok().json(json!({"status": true})))
}
