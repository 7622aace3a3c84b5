//! The mails the flows send: verification (sign-up, sign-in, change-email), the change-email
//! link, the "your email changed" notice. Each is made in one place here.

use crate::auth::email_token;
use crate::auth::error::AuthResult;
use crate::auth::links::encode_uri_component;
use crate::auth::models::{NewVerification, User};
use crate::auth::state::{AuthState, Client};
use crate::auth::store;
use crate::crypto::random;
use crate::db::DbError;
use diesel::Connection;

/// `verification.identifier` of the row that keeps a change-email token single use.
pub(super) fn change_email_identifier(jti: &str) -> String {
    format!("change-email:{jti}")
}

/// `BETTER_AUTH_URL` origin + `/api/auth/verify-email?token=…&callbackURL=…` (`callbackURL`
/// defaults to `/`, as Better Auth's does).
fn verify_link(state: &AuthState, token: &str, callback_url: Option<&str>) -> String {
    let callback = callback_url.filter(|c| !c.is_empty()).unwrap_or("/");
    format!(
        "{}/verify-email?token={token}&callbackURL={}",
        state.base_api_url(),
        encode_uri_component(callback)
    )
}

/// Mails a link that verifies `email`, the user's address. Returns at once; the mail goes out
/// in the background.
pub(crate) fn mail_verification(
    state: &AuthState,
    client: &Client,
    user: &User,
    email: &str,
    callback_url: Option<&str>,
) {
    let expires_in = state.auth().email_verification.expires_in_secs;
    let token = email_token::issue(state.secret(), email, &user.id, state.now(), expires_in);
    let user = User {
        email: email.to_owned(),
        ..user.clone()
    };
    let mail = verification_email(state, &user, &token, callback_url);
    state.mailer.send(mail, client.request_id.clone());
}

/// The one place a verification mail is made (the mailer sends it).
pub(super) fn verification_email(
    state: &AuthState,
    user: &User,
    token: &str,
    callback_url: Option<&str>,
) -> crate::auth::mail::Email {
    let expires_in = state.auth().email_verification.expires_in_secs;
    let link = verify_link(state, token, callback_url);
    state
        .mailer
        .templates
        .verification(&user.email, &user.name, &link, expires_in)
}

/// Mails the change-email link to `new_email`: following it moves the account from its current
/// address to `new_email`. The link works once: its `jti` names a `verification` row that
/// following it consumes (Better Auth's stateless token would work again after the user changed
/// the address away and back).
pub(super) async fn mail_change_email(
    state: &AuthState,
    client: &Client,
    user: &User,
    new_email: &str,
    callback_url: Option<&str>,
) -> AuthResult<()> {
    let expires_in = state.auth().email_verification.expires_in_secs;
    let now = state.now();
    let jti = random::id();
    let (row_id, identifier, user_id) =
        (random::id(), change_email_identifier(&jti), user.id.clone());
    let expires_at = now + chrono::Duration::seconds(expires_in);
    let token = email_token::issue_change_email(
        state.secret(),
        &user.email,
        new_email,
        &user.id,
        &jti,
        now,
        expires_in,
    );
    let link = verify_link(state, &token, callback_url);
    let message = state
        .mailer
        .templates
        .change_email(new_email, &user.name, &link, expires_in);
    let mailer = state.mailer.clone();
    let rid = client.request_id.clone();
    // The single-use row and its mail commit together.
    state
        .run(move |conn| {
            conn.transaction::<_, DbError, _>(|conn| {
                store::insert_verification(
                    conn,
                    &NewVerification {
                        id: &row_id,
                        identifier: &identifier,
                        value: &user_id,
                        expires_at,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                mailer.enqueue_in(conn, now, &message, rid.as_deref())
            })
        })
        .await?;
    state.mailer.wake();
    Ok(())
}

/// Tells the OLD address that the account's email changed (both change-email flows).
pub(super) fn mail_email_changed(state: &AuthState, client: &Client, before: &User, after: &User) {
    let link = format!("{}/", state.origins.base_origin());
    let message =
        state
            .mailer
            .templates
            .email_changed(&before.email, &after.name, &after.email, &link);
    state.mailer.send(message, client.request_id.clone());
}
