//! Changing the signed-in user's account: profile, password, email, deletion (spec §6.9–6.12).

use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::{ProfileUpdate, Session, User};
use crate::auth::password::js_length;
use crate::auth::service::mail::{mail_change_email, mail_email_changed, mail_verification};
use crate::auth::service::sign::check_password_length;
use crate::auth::state::{AuthState, Client, SignedIn};
use crate::auth::store;
use crate::db::{DbError, UserId};

/// Sets the name and/or the image (`Some(None)` clears it).
pub async fn update_user(
    state: &AuthState,
    user_id: &UserId,
    name: Option<String>,
    image: Option<Option<String>>,
) -> AuthResult<()> {
    if name.is_none() && image.is_none() {
        return Err(AuthError::bad_request(Code::NoFieldsToUpdate));
    }
    let now = state.now();
    let user_id = user_id.to_owned();
    state
        .write(move |w| {
            w.update_profile(
                &user_id,
                &ProfileUpdate {
                    name: name.as_deref(),
                    image: image.as_ref().map(|i| i.as_deref()),
                    updated_at: now,
                },
            )
        })
        .await?;
    Ok(())
}

/// Verifies `password` against the user's credential account (400s as Better Auth answers).
async fn check_current_password(
    state: &AuthState,
    user_id: &UserId,
    password: String,
) -> AuthResult<String> {
    let user_id = user_id.to_owned();
    let account = state
        .db(move |conn| store::credential_account(conn, &user_id))
        .await?;
    let Some((account_id, hash)) = account.and_then(|a| a.password.map(|p| (a.id, p))) else {
        return Err(AuthError::bad_request(Code::CredentialAccountNotFound));
    };
    if !state.hasher.verify(password, Some(hash)).await? {
        return Err(AuthError::bad_request(Code::InvalidPassword));
    }
    Ok(account_id)
}

/// Changes the password; with `revoke`, ends every session of the user and starts a new one,
/// which it returns.
pub async fn change_password(
    state: &AuthState,
    client: &Client,
    signed_in: &SignedIn,
    new_password: String,
    current: String,
    revoke: bool,
) -> AuthResult<Option<Session>> {
    check_password_length(state, &new_password)?;
    if js_length(&current) > state.auth().email_and_password.max_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooLong));
    }
    let account_id = check_current_password(state, &signed_in.user.id, current).await?;
    let hash = state.hasher.hash(new_password).await?;
    let now = state.now();
    let user_id = signed_in.user.id.clone();
    state
        .write(move |w| {
            store::set_password(w.conn(), &account_id, &hash, now)?;
            if revoke {
                w.delete_sessions_of(&user_id)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
    if !revoke {
        return Ok(None);
    }
    let remember = !signed_in.dont_remember;
    let session = state
        .create_session(&signed_in.user.id, remember, client)
        .await?;
    Ok(Some(session))
}

/// What a change of email did.
pub enum EmailChange {
    /// The address belongs to someone else (not revealed: the answer is as for success).
    Taken,
    /// Changed at once (flow (a)); the session cookie is re-issued.
    Changed,
    /// The link to confirm it went to the new address (flow (c)); nothing changed yet.
    LinkSent,
}

/// Changes the caller's email, when enabled: at once for unverified users with
/// `update_email_without_verification` (then mailing a verification link to the new address),
/// otherwise once the link mailed to the new address is followed.
pub async fn change_email(
    state: &AuthState,
    client: &Client,
    signed_in: &SignedIn,
    new_email: String,
    callback_url: Option<String>,
) -> AuthResult<EmailChange> {
    let new_email = new_email.to_lowercase();
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    if new_email == signed_in.user.email {
        return Err(AuthError::bad_request(Code::EmailIsTheSame));
    }
    let settings = &state.auth().user;
    let immediate = !signed_in.user.email_verified && settings.update_email_without_verification;
    let can_mail = state.auth().email_verification.enabled;
    if !immediate && !can_mail {
        return Err(AuthError::bad_request(Code::VerificationEmailNotEnabled));
    }
    /// What the transaction found.
    enum Found {
        Taken,
        Free,
        Changed(User),
    }
    let now = state.now();
    let user_id = signed_in.user.id.clone();
    let target = new_email.clone();
    let changed = state
        .write(move |w| {
            if store::user_by_email(w.conn(), &target)?.is_some() {
                return Ok(Found::Taken);
            }
            if !immediate {
                return Ok(Found::Free);
            }
            Ok(Found::Changed(
                w.update_email(&user_id, &target, false, now)?,
            ))
        })
        .await;
    match changed {
        // Taken (found, or lost a race to the unique index): answer as if it worked.
        Ok(Found::Taken) | Err(AuthError::Db(DbError::Conflict(_))) => Ok(EmailChange::Taken),
        // Flow (a): changed at once; the new address gets a verification mail of its own.
        Ok(Found::Changed(user)) => {
            mail_email_changed(state, client, &signed_in.user, &user);
            if can_mail {
                mail_verification(state, client, &user, &user.email, callback_url.as_deref());
            }
            Ok(EmailChange::Changed)
        }
        // Flow (c): nothing changes until the link mailed to the new address is followed.
        Ok(Found::Free) => {
            let cb = callback_url.as_deref();
            mail_change_email(state, client, &signed_in.user, &new_email, cb).await?;
            Ok(EmailChange::LinkSent)
        }
        Err(other) => Err(other),
    }
}

/// Deletes the caller's account: with the password, or from a fresh session.
pub async fn delete_user(
    state: &AuthState,
    signed_in: &SignedIn,
    password: Option<String>,
    callback_url: Option<String>,
) -> AuthResult<()> {
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    match password {
        Some(password) => {
            check_current_password(state, &signed_in.user.id, password).await?;
        }
        None if !state.is_fresh(&signed_in.session) => {
            return Err(AuthError::bad_request(Code::SessionExpired));
        }
        None => {}
    }
    let user_id = signed_in.user.id.clone();
    state.write(move |w| w.delete_user(&user_id)).await?;
    Ok(())
}
