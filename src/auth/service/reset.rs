//! Password reset (spec §6.13–6.15, §8.2): the request that mails a single-use link, the link
//! itself, and setting the new password.

use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::links::{encode_uri_component, resolve_with_param, set_search_param};
use crate::auth::models::NewVerification;
use crate::auth::service::sign::check_password_length;
use crate::auth::state::{AuthState, Client};
use crate::auth::store;
use crate::crypto::random;
use crate::db::{DbError, UserId};
use chrono::Duration;
use diesel::Connection;
use std::sync::Arc;

fn identifier(token: &str) -> String {
    format!("reset-password:{token}")
}

/// Mails a single-use reset link if the address has an account; returns before knowing.
pub fn request_password_reset(
    state: Arc<AuthState>,
    client: &Client,
    email: String,
    redirect_to: Option<String>,
) -> AuthResult<()> {
    let email = email.to_lowercase();
    state
        .origins
        .check_url(redirect_to.as_deref(), Code::InvalidRedirectUrl)?;
    let config = state.auth().password_reset.clone();
    if !config.enabled {
        return Err(AuthError::bad_request(Code::ResetPasswordDisabled));
    }

    // Known or not, the address goes to the background step and the answer leaves now: the
    // look-up, the token write and the mail happen after it, so its timing says nothing.
    let request_id = client.request_id.clone();
    actix_web::rt::spawn(async move {
        // Let the answer go out first: the known address's extra work must not delay it.
        tokio::task::yield_now().await;
        if let Err(error) = deliver_reset(state, email, redirect_to, request_id.clone()).await {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), %error,
                "preparing a password reset failed");
        }
    });
    Ok(())
}

/// The background step of a reset request: when `email` has an account, writes a single-use
/// token (1 hour by default) and puts its mail in the outbox in the same transaction. The one
/// place a reset mail is made.
async fn deliver_reset(
    state: std::sync::Arc<AuthState>,
    email: String,
    redirect_to: Option<String>,
    request_id: Option<String>,
) -> AuthResult<()> {
    // Everything that depends on the address runs on the blocking pool; the worker thread only
    // hands a finished message to the mailer.
    let config = state.auth().password_reset.clone();
    let now = state.now();
    let token = random::string_from(random::ALPHANUMERIC, 24);
    let expires_at = now + Duration::seconds(config.token_expires_in_secs);
    let id = identifier(&token);
    let inner = state.clone();
    let queued = state
        .run(move |conn| {
            // The token and its mail commit together: a restart after this sends it anyway.
            conn.transaction::<_, DbError, _>(|conn| {
                let Some(user) = store::user_by_email(conn, &email)? else {
                    return Ok(false);
                };
                store::insert_verification(
                    conn,
                    &NewVerification {
                        id: &random::id(),
                        identifier: &id,
                        value: &user.id,
                        expires_at,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let link = format!(
                    "{}/reset-password/{token}?callbackURL={}",
                    inner.base_api_url(),
                    redirect_to
                        .as_deref()
                        .map(encode_uri_component)
                        .unwrap_or_default()
                );
                let mail = inner.mailer.templates.reset_password(
                    &user.email,
                    &user.name,
                    &link,
                    config.token_expires_in_secs,
                );
                inner
                    .mailer
                    .enqueue_in(conn, now, &mail, request_id.as_deref())?;
                Ok(true)
            })
        })
        .await?;
    if queued {
        state.mailer.wake();
    }
    Ok(())
}

/// Where the emailed link sends the browser: the app's reset page with `?token=`, or with
/// `?error=INVALID_TOKEN`. The token is not used up here.
pub async fn reset_target(state: &AuthState, token: &str, callback: &str) -> AuthResult<String> {
    state
        .origins
        .check_url(Some(callback), Code::InvalidCallbackUrl)?;
    let base = state.base_api_url();
    if callback.is_empty() || token.is_empty() {
        return Ok(set_search_param(
            &format!("{base}/error"),
            "error",
            Code::InvalidToken.as_str(),
        ));
    }
    state.purge_expired_verifications().await?;
    let (id, now) = (identifier(token), state.now());
    let live = state
        .db(move |conn| store::live_verification(conn, &id, now))
        .await?;
    Ok(match live {
        Some(_) => resolve_with_param(&base, callback, "token", token),
        None => resolve_with_param(&base, callback, "error", Code::InvalidToken.as_str()),
    })
}

/// Sets a new password with a reset token (from the body, else the query), which is used up.
/// Starts no session.
pub async fn reset_password(
    state: &AuthState,
    new_password: String,
    token: Option<String>,
) -> AuthResult<()> {
    let Some(token) = token else {
        return Err(AuthError::bad_request(Code::InvalidToken));
    };
    check_password_length(state, &new_password)?;
    state.purge_expired_verifications().await?;

    let id = identifier(&token);
    // A cheap look first, so made-up tokens never cost a password hash.
    let (lookup, now) = (id.clone(), state.now());
    let live = state
        .db(move |conn| store::live_verification(conn, &lookup, now))
        .await?;
    if live.is_none() {
        return Err(AuthError::bad_request(Code::InvalidToken));
    }
    let hash = state.hasher.hash(new_password).await?;
    let now = state.now();
    let revoke = state.auth().password_reset.revoke_sessions_on_reset;
    let outcome = state
        .write(move |w| {
            w.transaction(|w| {
                // Consumed in the same statement that reads it: of two concurrent resets with
                // one token, exactly one finds the row.
                let Some(row) = store::take_verification(w.conn(), &id)?.filter(|r| r.is_live(now))
                else {
                    return Ok(Err(Code::InvalidToken));
                };
                let Some(user) = store::user_by_id(w.conn(), &UserId::from(row.value.as_str()))?
                else {
                    return Ok(Err(Code::UserNotFound));
                };
                match store::credential_account(w.conn(), &user.id)? {
                    Some(account) => {
                        store::set_password(w.conn(), &account.id, &hash, now)?;
                    }
                    // A GitHub-only user gets an email-and-password account.
                    None => {
                        store::insert_credential_account(w.conn(), &user.id, &hash, now)?;
                    }
                }
                // The reset proved the address: links made while it was unverified go.
                w.drop_links_of_unverified(&user)?;
                if revoke {
                    w.delete_sessions_of(&user.id)?;
                }
                Ok::<_, diesel::result::Error>(Ok(user.id))
            })
        })
        .await?;
    outcome.map(|_| ()).map_err(AuthError::bad_request)
}
