//! The OAuth flow around a provider (spec §8.3): the state kept between sign-in and callback
//! (signed cookie + `verification` row, consumed once), and the rules that decide which user a
//! provider account signs in as, or whether it may be linked.

use crate::auth::config::AccountLinkingConfig;
use crate::auth::models::{Account, NewAccount, NewUser, TokenUpdate, User};
use crate::auth::store::{self, Writer};
use crate::crypto::aead::Keyring;
use crate::crypto::random;
use crate::db::schema::user;
use crate::db::{SessionId, UserId};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// `verification.identifier` prefix of OAuth state rows (Better Auth 1.7).
pub const STATE_PREFIX: &str = "auth-state:";
/// How long a state row (and the state JSON) stays valid.
pub const STATE_LIFETIME_SECS: i64 = 600;
/// `Max-Age` of the state cookie.
pub const STATE_COOKIE_MAX_AGE: i64 = 300;

/// The state JSON, in Better Auth's shape, so a flow either server started can finish on the
/// other during a rolling switch-over. Unknown keys are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateData {
    #[serde(rename = "callbackURL")]
    pub callback_url: String,
    pub code_verifier: String,
    #[serde(rename = "errorURL", default, skip_serializing_if = "Option::is_none")]
    pub error_url: Option<String>,
    #[serde(
        rename = "newUserURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub new_user_url: Option<String>,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
    pub oauth_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkData>,
    /// sign-in/social's `requestSignUp`: the caller means to create an account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub request_sign_up: bool,
}

/// Who asked to link. Better Auth also keeps the session token here, encrypted; we keep the
/// session's row id instead (the row lives only in our database, so the id reveals nothing),
/// and check that session is still alive when the callback arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkData {
    pub user_id: UserId,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
}

/// Better Auth's callback error codes, sent as `?error=` to the error URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    OauthProviderNotFound,
    StateNotFound,
    StateMismatch,
    NoCode,
    NoCallbackUrl,
    InvalidCode,
    UnableToGetUserInfo,
    EmailNotFound,
    AccountNotLinked,
    UnableToLinkAccount,
    EmailDoesNotMatch,
    AccountAlreadyLinkedToDifferentUser,
    UnableToCreateUser,
    UnableToCreateSession,
    SignupDisabled,
    InternalServerError,
}

impl CallbackError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::OauthProviderNotFound => "oauth_provider_not_found",
            Self::StateNotFound => "state_not_found",
            Self::StateMismatch => "state_mismatch",
            Self::NoCode => "no_code",
            Self::NoCallbackUrl => "no_callback_url",
            Self::InvalidCode => "invalid_code",
            Self::UnableToGetUserInfo => "unable_to_get_user_info",
            Self::EmailNotFound => "email_not_found",
            Self::AccountNotLinked => "account_not_linked",
            Self::UnableToLinkAccount => "unable_to_link_account",
            Self::EmailDoesNotMatch => "email_does_not_match",
            Self::AccountAlreadyLinkedToDifferentUser => "account_already_linked_to_different_user",
            Self::UnableToCreateUser => "unable_to_create_user",
            Self::SignupDisabled => "signup_disabled",
            Self::UnableToCreateSession => "unable_to_create_session",
            Self::InternalServerError => "internal_server_error",
        }
    }
}

/// `<target>?error=…[&error_description=…]` (`&` when the target already has a query).
pub fn error_redirect(target: &str, error: &str, description: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("error", error);
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        query.append_pair("error_description", d);
    }
    let sep = if target.contains('?') { '&' } else { '?' };
    format!("{target}{sep}{}", query.finish())
}

/// The provider's answer, ready to store: tokens in plaintext here, sealed on write.
pub struct ProviderAccount {
    pub provider_id: &'static str,
    pub account_id: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub image: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

/// What the callback does next.
#[derive(Debug)]
pub enum Decision {
    /// Sign `user` in; `created` when this callback made the user.
    SignIn {
        user: User,
        created: bool,
    },
    /// The account was linked to the user who asked.
    Linked,
    Rejected(CallbackError),
}

/// Seals one token column, bound to its row and column.
fn seal(
    vault: &Keyring,
    account_row: &str,
    column: &str,
    value: Option<&str>,
) -> QueryResult<Option<String>> {
    value
        .map(|v| {
            vault
                .seal(v.as_bytes(), token_aad(account_row, column).as_bytes())
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
        })
        .transpose()
}

/// The associated data a token column is sealed with: the row id and the column name, so a
/// sealed value copied to another row or column does not decrypt.
pub fn token_aad(account_row: &str, column: &str) -> String {
    format!("account:{account_row}:{column}")
}

fn insert_account(
    conn: &mut PgConnection,
    vault: &Keyring,
    user_id: &UserId,
    p: &ProviderAccount,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let id = random::id();
    let access = seal(vault, &id, "access_token", Some(&p.access_token))?;
    let refresh = seal(vault, &id, "refresh_token", p.refresh_token.as_deref())?;
    let scope = p.scopes.join(",");
    store::insert_account(
        conn,
        &NewAccount {
            id: &id,
            account_id: &p.account_id,
            provider_id: p.provider_id,
            access_token: access.as_deref(),
            refresh_token: refresh.as_deref(),
            access_token_expires_at: p.access_token_expires_at,
            refresh_token_expires_at: p.refresh_token_expires_at,
            scope: (!scope.is_empty()).then_some(scope.as_str()),
            ..NewAccount::new(user_id, now)
        },
    )
    .map(|_| ())
}

fn update_account(
    conn: &mut PgConnection,
    vault: &Keyring,
    row: &Account,
    p: &ProviderAccount,
    merge_scopes: bool,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let access = seal(vault, &row.id, "access_token", Some(&p.access_token))?;
    let refresh = seal(vault, &row.id, "refresh_token", p.refresh_token.as_deref())?;
    let merged = merge_scopes.then(|| {
        let mut scopes: Vec<&str> = row
            .scope
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .collect();
        for s in &p.scopes {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        scopes.join(",")
    });
    store::update_tokens(
        conn,
        &row.id,
        &TokenUpdate {
            access_token: access.as_deref(),
            refresh_token: refresh.as_deref(),
            access_token_expires_at: p.access_token_expires_at,
            refresh_token_expires_at: p.refresh_token_expires_at,
            scope: merged.as_deref().filter(|s| !s.is_empty()),
            updated_at: now,
        },
    )
    .map(|_| ())
}

fn find_user(conn: &mut PgConnection, id: &str) -> QueryResult<Option<User>> {
    user::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Better Auth's upgrade: a verified provider email equal to the user's marks the user verified.
fn upgrade_verified(
    w: &mut Writer<'_>,
    user: User,
    p: &ProviderAccount,
    now: DateTime<Utc>,
) -> QueryResult<User> {
    if p.email_verified && !user.email_verified && user.email.eq_ignore_ascii_case(&p.email) {
        return w.mark_email_verified(&user.id, now);
    }
    Ok(user)
}

/// Sign-in (spec §8.3 step 8), in one transaction under the provider account's lock.
pub fn sign_in(
    w: &mut Writer<'_>,
    vault: &Keyring,
    linking: &AccountLinkingConfig,
    sign_up: bool,
    p: &ProviderAccount,
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    w.transaction(|w| {
        store::lock_provider_account(w.conn(), p.provider_id, &p.account_id)?;
        if let Some(row) = store::provider_account(w.conn(), p.provider_id, &p.account_id)? {
            let Some(user) = find_user(w.conn(), &row.user_id)? else {
                return Ok(Decision::Rejected(CallbackError::InternalServerError));
            };
            // Better Auth's updateAccountOnSignIn: fresh tokens, the scope left as it was.
            update_account(w.conn(), vault, &row, p, false, now)?;
            let user = upgrade_verified(w, user, p, now)?;
            return Ok(Decision::SignIn {
                user,
                created: false,
            });
        }
        let existing = user::table
            .filter(user::email.eq(&p.email))
            .select(User::as_select())
            .first(w.conn())
            .optional()?;
        if let Some(user) = existing {
            // Implicit linking only when both sides vouch for the email: otherwise whoever
            // controls a GitHub account with someone's address would take over their account.
            let trusted = linking.trusted_providers.iter().any(|t| t == p.provider_id);
            if !linking.enabled || !(p.email_verified || trusted) || !user.email_verified {
                return Ok(Decision::Rejected(CallbackError::AccountNotLinked));
            }
            insert_account(w.conn(), vault, &user.id, p, now)?;
            let user = upgrade_verified(w, user, p, now)?;
            return Ok(Decision::SignIn {
                user,
                created: false,
            });
        }
        if !sign_up {
            return Ok(Decision::Rejected(CallbackError::SignupDisabled));
        }
        let id = UserId::generate();
        let user = w.insert_user(&NewUser {
            id: &id,
            name: &p.name,
            email: &p.email,
            email_verified: p.email_verified,
            image: p.image.as_deref(),
            created_at: now,
            updated_at: now,
        })?;
        insert_account(w.conn(), vault, &user.id, p, now)?;
        Ok(Decision::SignIn {
            user,
            created: true,
        })
    })
}

/// Link (spec §8.3 step 7): the account joins the user who started the flow.
pub fn link(
    w: &mut Writer<'_>,
    vault: &Keyring,
    linking: &AccountLinkingConfig,
    link: &LinkData,
    session_ok: bool,
    p: &ProviderAccount,
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    w.transaction(|w| {
        let alive = match &link.session_id {
            Some(session_id) => store::session_alive(w.conn(), session_id, &link.user_id, now)?,
            None => session_ok,
        };
        if !alive || !linking.enabled {
            return Ok(Decision::Rejected(CallbackError::UnableToLinkAccount));
        }
        let trusted = linking.trusted_providers.iter().any(|t| t == p.provider_id);
        if !(p.email_verified || trusted) {
            return Ok(Decision::Rejected(CallbackError::UnableToLinkAccount));
        }
        if !linking.allow_different_emails && !p.email.eq_ignore_ascii_case(&link.email) {
            return Ok(Decision::Rejected(CallbackError::EmailDoesNotMatch));
        }
        store::lock_provider_account(w.conn(), p.provider_id, &p.account_id)?;
        match store::provider_account(w.conn(), p.provider_id, &p.account_id)? {
            Some(row) if row.user_id != link.user_id => Ok(Decision::Rejected(
                CallbackError::AccountAlreadyLinkedToDifferentUser,
            )),
            Some(row) => {
                update_account(w.conn(), vault, &row, p, true, now)?;
                Ok(Decision::Linked)
            }
            None => {
                insert_account(w.conn(), vault, &link.user_id, p, now)?;
                Ok(Decision::Linked)
            }
        }
    })
}

/// `expires_at` of a new state row and of its JSON.
pub fn state_expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::seconds(STATE_LIFETIME_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_redirects_append_to_any_target() {
        assert_eq!(
            error_redirect("/login-error", "access_denied", Some("user denied")),
            "/login-error?error=access_denied&error_description=user+denied"
        );
        assert_eq!(
            error_redirect("http://a.test/e?x=1", "state_mismatch", None),
            "http://a.test/e?x=1&error=state_mismatch"
        );
    }

    #[test]
    fn reads_better_auths_state_json() {
        let json = r#"{"callbackURL":"http://localhost:5173/dash","codeVerifier":"v","errorURL":"/login-error","newUserURL":"/welcome",
            "expiresAt":1795625301683,"oauthState":"a18h","link":{"userId":"u","email":"e@x.io","encryptedSessionToken":"ab"},"requestSignUp":false}"#;
        let s: StateData = serde_json::from_str(json).unwrap();
        assert_eq!(s.callback_url, "http://localhost:5173/dash");
        assert_eq!(s.error_url.as_deref(), Some("/login-error"));
        assert_eq!(s.new_user_url.as_deref(), Some("/welcome"));
        assert_eq!(s.expires_at, 1795625301683);
        assert_eq!(s.link.unwrap().session_id, None);
        assert!(!s.request_sign_up);
        let asked = json.replace(r#""requestSignUp":false"#, r#""requestSignUp":true"#);
        let s: StateData = serde_json::from_str(&asked).unwrap();
        assert!(s.request_sign_up);
        assert!(
            serde_json::to_string(&s)
                .unwrap()
                .contains(r#""requestSignUp":true"#)
        );
    }
}
