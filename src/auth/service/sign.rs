//! Sign-up, sign-in and sign-out with email and password (spec §6.1–6.3).

use crate::auth::body;
use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::{NewUser, Session, User};
use crate::auth::password::js_length;
use crate::auth::service::mail::mail_verification;
use crate::auth::state::{AuthState, Client};
use crate::auth::store;
use crate::db::{DbError, UserId};

/// Enforces the configured password length (JavaScript string length).
pub fn check_password_length(state: &AuthState, password: &str) -> AuthResult<()> {
    let rules = &state.auth().email_and_password;
    let len = js_length(password);
    if len < rules.min_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooShort));
    }
    if len > rules.max_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooLong));
    }
    Ok(())
}

/// A validated sign-up body.
pub struct SignUp {
    pub name: String,
    pub email: String,
    pub password: String,
    pub image: Option<String>,
    pub callback_url: Option<String>,
    pub remember: bool,
}

/// The user, and the session when sign-up signs in.
pub struct SignedUp {
    pub user: User,
    pub session: Option<Session>,
}

/// Creates a user with an email-and-password account.
pub async fn sign_up(state: &AuthState, client: &Client, input: SignUp) -> AuthResult<SignedUp> {
    let SignUp {
        name,
        email,
        password,
        image,
        callback_url,
        remember,
    } = input;
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    let rules = state.auth().email_and_password.clone();
    if !rules.enabled || rules.disable_sign_up {
        return Err(AuthError::bad_request(Code::EmailPasswordSignUpDisabled));
    }
    check_password_length(state, &password)?;
    let email = email.to_lowercase();
    let quiet_duplicates = rules.require_email_verification || !rules.auto_sign_in;

    // No look-up first: a taken address is found by the insert itself, so a new and an existing
    // address cost the same (one hash, one transaction) and the timing does not tell them apart.
    let hash = state.hasher.hash(password).await?;
    let now = state.now();
    let (new_name, new_email, new_image) = (name.clone(), email.clone(), image.clone());
    let created = state
        .write(move |w| {
            w.transaction(|w| {
                let id = UserId::generate();
                let user = w.insert_user(&NewUser {
                    id: &id,
                    name: &new_name,
                    email: &new_email,
                    email_verified: false,
                    image: new_image.as_deref(),
                    created_at: now,
                    updated_at: now,
                })?;
                store::insert_credential_account(w.conn(), &user.id, &hash, now)?;
                Ok::<_, diesel::result::Error>(user)
            })
        })
        .await;
    let user = match created {
        Ok(user) => user,
        // Taken (also by a sign-up racing this one).
        Err(AuthError::Db(DbError::Conflict(_))) if quiet_duplicates => {
            // Answer as for a new user, so sign-up does not reveal who has an account.
            let user = User {
                name,
                email,
                email_verified: false,
                image,
                created_at: now,
                updated_at: now,
                id: UserId::generate(),
            };
            return Ok(SignedUp {
                user,
                session: None,
            });
        }
        Err(AuthError::Db(DbError::Conflict(_))) => {
            return Err(AuthError::unprocessable(
                Code::UserAlreadyExistsUseAnotherEmail,
            ));
        }
        Err(other) => return Err(other),
    };

    if state.auth().send_on_sign_up() {
        mail_verification(state, client, &user, &user.email, callback_url.as_deref());
    }
    if quiet_duplicates {
        return Ok(SignedUp {
            user,
            session: None,
        });
    }
    let session = state.create_session(&user.id, remember, client).await?;
    Ok(SignedUp {
        user,
        session: Some(session),
    })
}

/// A validated sign-in body.
pub struct SignIn {
    pub email: String,
    pub password: String,
    pub callback_url: Option<String>,
    pub remember: bool,
}

/// Checks the password and starts a session.
pub async fn sign_in(
    state: &AuthState,
    client: &Client,
    input: SignIn,
) -> AuthResult<(User, Session)> {
    let SignIn {
        email,
        password,
        callback_url,
        remember,
    } = input;
    state
        .origins
        .check_url(callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    if !body::is_email(&email) {
        return Err(AuthError::bad_request(Code::InvalidEmail));
    }
    let rules = state.auth().email_and_password.clone();
    if !rules.enabled {
        return Err(AuthError::bad_request(Code::EmailPasswordDisabled));
    }
    if js_length(&password) > rules.max_password_length {
        return Err(AuthError::bad_request(Code::PasswordTooLong));
    }

    let email = email.to_lowercase();
    let found = state
        .db(move |conn| {
            let Some(user) = store::user_by_email(conn, &email)? else {
                return Ok(None);
            };
            let hash = store::credential_account(conn, &user.id)?.and_then(|a| a.password);
            Ok(Some((user, hash)))
        })
        .await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    // Unknown emails and missing passwords still cost one full hash.
    let valid = state.hasher.verify(password, hash).await?;
    let Some(user) = user.filter(|_| valid) else {
        return Err(AuthError::unauthorized(Code::InvalidEmailOrPassword));
    };
    if rules.require_email_verification && !user.email_verified {
        let verification = &state.auth().email_verification;
        if verification.enabled && verification.send_on_sign_in {
            mail_verification(state, client, &user, &user.email, callback_url.as_deref());
        }
        return Err(AuthError::forbidden(Code::EmailNotVerified));
    }
    let session = state.create_session(&user.id, remember, client).await?;
    Ok((user, session))
}

/// Ends the session the cookie names, if any.
pub async fn sign_out(state: &AuthState, client: &Client) -> AuthResult<()> {
    if let Some(token) = client.session_token.clone() {
        state
            .write(move |w| w.delete_session_by_token(&token))
            .await?;
    }
    Ok(())
}
