//! The accounts a user signs in with (spec §6.18–6.19), and removing one (never the last).

use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::Account;
use crate::auth::state::AuthState;
use crate::auth::store;
use crate::db::UserId;

/// The user's accounts (credential and GitHub).
pub async fn list_accounts(state: &AuthState, user_id: &UserId) -> AuthResult<Vec<Account>> {
    let user_id = user_id.to_owned();
    state
        .db(move |conn| store::accounts_of(conn, &user_id))
        .await
}

/// Which account to unlink: Better Auth 1.7 names the row id (`account_id`); ≤ 1.6 names the
/// provider (`provider_id`) and optionally the provider's account id.
pub async fn unlink_account(
    state: &AuthState,
    user_id: &UserId,
    provider_id: Option<String>,
    account_id: Option<String>,
) -> AuthResult<()> {
    let allow_all = state.auth().account_linking.allow_unlinking_all;
    let user_id = user_id.to_owned();
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
        })
        .await?;
    outcome.map_err(AuthError::bad_request)
}
