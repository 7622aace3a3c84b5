//! Email verification (spec §6.16, §6.17, §8.1): mailing the link on request, and following it
//! (which may also complete a change of email).

use crate::auth::email_token::{self, CHANGE_EMAIL_VERIFICATION, TokenError};
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::{Session, User};
use crate::auth::service::mail::{
    change_email_identifier, mail_email_changed, mail_verification, verification_email,
};
use crate::auth::state::{AuthState, Client, SignedIn};
use crate::auth::store;
use crate::db::DbError;
use std::sync::Arc;
use std::time::Duration;

/// Mails a verification link. Without a session the answer is always the same (and never
/// quicker than `anonymous_min_response_ms` after `started`), so it does not tell who has an
/// account.
pub async fn send_verification_email(
    state: Arc<AuthState>,
    client: &Client,
    started: tokio::time::Instant,
    email: String,
    callback_url: Option<String>,
) -> AuthResult<()> {
    let email = email.to_lowercase();
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    if !state.auth().email_verification.enabled {
        return Err(AuthError::bad_request(Code::VerificationEmailNotEnabled));
    }
    if let Some(signed_in) = state.current_session(client).await? {
        let user = signed_in.user;
        if user.email != email {
            return Err(AuthError::bad_request(Code::EmailMismatch));
        }
        if user.email_verified {
            return Err(AuthError::bad_request(Code::EmailAlreadyVerified));
        }
        mail_verification(&state, client, &user, &user.email, callback_url.as_deref());
        return Ok(());
    }

    // Without a session, known and unknown addresses take the same path up to the answer:
    // the look-up and the mail happen in the background, after it.
    // Everything that depends on the address (the look-up, and for a known one the token and
    // the message) runs on the blocking pool; the worker only hands the result to the mailer.
    let request_id = client.request_id.clone();
    let background = state.clone();
    actix_web::rt::spawn(async move {
        // Let the answer go out first: the known address's extra work must not delay it.
        tokio::task::yield_now().await;
        let state = background.clone();
        let rid = request_id.clone();
        let queued = state
            .run(move |conn| {
                let user = store::user_by_email(conn, &email)?;
                let Some(user) = user.filter(|u| !u.email_verified) else {
                    return Ok(false);
                };
                let now = background.now();
                let token = email_token::issue(
                    background.secret(),
                    &user.email,
                    &user.id,
                    now,
                    background.auth().email_verification.expires_in_secs,
                );
                let mail = verification_email(&background, &user, &token, callback_url.as_deref());
                background
                    .mailer
                    .enqueue_in(conn, now, &mail, rid.as_deref())?;
                Ok(true)
            })
            .await;
        match queued {
            Ok(true) => state.mailer.wake(),
            Ok(false) => {}
            Err(error) => tracing::error!(
                request_id = request_id.as_deref().unwrap_or("-"),
                %error,
                "looking up the address for a verification mail failed"
            ),
        }
    });
    // Real time, not the injected clock: this bounds what a client can measure.
    let floor = Duration::from_millis(state.auth().email_verification.anonymous_min_response_ms);
    if !floor.is_zero() {
        tokio::time::sleep_until(started + floor).await;
    }
    Ok(())
}

/// Which session cookie a followed link sets.
pub enum SignIn {
    None,
    /// The browser's own session of this user: re-issue its cookie.
    Reissue(SignedIn),
    /// Auto sign-in after verification started this session (remembered).
    Started(Session),
}

/// What following an emailed link did.
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per request"
)]
pub enum Verified {
    /// Refused: `?error=CODE` with a callback, else 401.
    Failed(Code),
    Done {
        sign_in: SignIn,
        /// The updated user after a change of email.
        user: Option<User>,
        /// [`SIGNED_IN_AS_ANOTHER_USER`] when auto sign-in kept another user's session.
        notice: Option<&'static str>,
    },
}

/// `?notice=` of a verify-email redirect that verified the address but kept the browser's
/// session of another user instead of signing in (auto sign-in after verification).
pub const SIGNED_IN_AS_ANOTHER_USER: &str = "SIGNED_IN_AS_ANOTHER_USER";

/// Verifies an email address (or completes a change of email) from the emailed token.
pub async fn verify_email(state: &AuthState, client: &Client, token: &str) -> AuthResult<Verified> {
    let fail = |code: Code| Ok(Verified::Failed(code));
    let done = |sign_in, user, notice| {
        Ok(Verified::Done {
            sign_in,
            user,
            notice,
        })
    };
    let claims = match email_token::verify(state.secret(), token, state.now()) {
        Ok(claims) => claims,
        Err(TokenError::Expired) => return fail(Code::TokenExpired),
        Err(TokenError::Invalid) => return fail(Code::InvalidToken),
    };
    let lookup = claims.email.clone();
    let user = state
        .db(move |conn| store::user_by_email(conn, &lookup))
        .await?;
    let Some(user) = user else {
        return fail(Code::UserNotFound);
    };
    // Tokens from older Better Auth versions carry no userId; those that do must match.
    if claims.user_id.as_deref().is_some_and(|id| user.id != id) {
        return fail(Code::InvalidToken);
    }

    if let Some(new_email) = claims.update_to {
        if claims.request_type.as_deref() != Some(CHANGE_EMAIL_VERIFICATION) {
            // Change-email confirmation to the old address (flow (b)) is not offered.
            return fail(Code::InvalidToken);
        }
        // Only our own single-use tokens: a stateless one (Better Auth's) could be replayed.
        let Some(jti) = claims.jti else {
            return fail(Code::InvalidToken);
        };
        let signed_in = state.current_session(client).await?;
        if signed_in.as_ref().is_some_and(|s| s.user.id != user.id) {
            return fail(Code::InvalidUser);
        }
        let (now, user_id, verified) = (state.now(), user.id.clone(), user.email_verified);
        let updated = state
            .write(move |w| {
                w.transaction(|w| {
                    let identifier = change_email_identifier(&jti);
                    let row =
                        store::take_verification(w.conn(), &identifier)?.filter(|r| r.is_live(now));
                    if row.is_none_or(|r| user_id != r.value.as_str()) {
                        return Ok(None);
                    }
                    w.update_email(&user_id, &new_email, verified, now)
                        .map(Some)
                })
            })
            .await;
        let updated = match updated {
            Ok(Some(updated)) => updated,
            // Used already (or never issued by us).
            Ok(None) => return fail(Code::InvalidToken),
            // Someone took the address since the link was sent.
            Err(AuthError::Db(DbError::Conflict(_))) => {
                return fail(Code::UserAlreadyExistsUseAnotherEmail);
            }
            Err(other) => return Err(other),
        };
        mail_email_changed(state, client, &user, &updated);
        let sign_in = signed_in.map_or(SignIn::None, SignIn::Reissue);
        return done(sign_in, Some(updated), None);
    }

    if user.email_verified {
        return done(SignIn::None, None, None);
    }
    let (now, user_id) = (state.now(), user.id.clone());
    // Ownership of the address is proven now: social links made while it was unverified go,
    // with every session (one of them may be a pre-hijacker's).
    state.write(move |w| w.verify_email(&user_id, now)).await?;
    let mut sign_in = SignIn::None;
    let mut notice = None;
    if state
        .auth()
        .email_verification
        .auto_sign_in_after_verification
    {
        match state.current_session(client).await? {
            Some(s) if s.user.id == user.id => sign_in = SignIn::Reissue(s),
            // Signed in as someone else: the link verifies, but never replaces that session
            // (an attacker's link would otherwise sign the victim in as the attacker).
            Some(_) => notice = Some(SIGNED_IN_AS_ANOTHER_USER),
            None => sign_in = SignIn::Started(state.create_session(&user.id, true, client).await?),
        }
    }
    done(sign_in, None, notice)
}
