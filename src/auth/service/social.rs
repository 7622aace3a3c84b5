//! GitHub sign-in and linking (spec §6.20, §6.21, §8.3): starting the flow (state row, PKCE,
//! authorize URL) and finishing it where GitHub sends the browser back. GitHub is the one
//! provider.

use crate::auth::error::{AuthError, AuthResult, Code};
use crate::auth::models::NewVerification;
use crate::auth::models::Session;
use crate::auth::service::mail::mail_verification;
use crate::auth::social::flow::{
    self, CallbackError, Decision, LinkData, ProviderAccount, STATE_PREFIX, StateData,
};
use crate::auth::social::github::{self, Github};
use crate::auth::state::{AuthState, Client};
use crate::auth::store;
use crate::crypto::hmac::constant_time_eq;
use crate::crypto::random;
use crate::db::DbError;
use crate::platform::clock::expires_after;

pub const GITHUB: &str = "github";

/// What sign-in/social and link-social read from a body.
pub struct Start {
    pub callback_url: Option<String>,
    pub new_user_url: Option<String>,
    pub error_url: Option<String>,
    pub disable_redirect: bool,
    pub scopes: Vec<String>,
    pub login_hint: Option<String>,
    pub request_sign_up: bool,
}

fn github_of(state: &AuthState) -> AuthResult<&Github> {
    state
        .social
        .github
        .as_ref()
        .ok_or(AuthError::not_found(Code::ProviderNotFound))
}

/// A started flow: the authorize URL, and the state the signed `state` cookie carries.
pub struct Started {
    pub url: String,
    pub oauth_state: String,
}

/// Checks where the flow may send the browser, then writes the state row (sign-in, or linking
/// to `link`'s user).
pub async fn start(
    state: &AuthState,
    provider: &str,
    start: Start,
    id_token: bool,
    link: Option<LinkData>,
) -> AuthResult<Started> {
    let origins = &state.origins;
    origins.check_url(start.callback_url.as_deref(), Code::InvalidCallbackUrl)?;
    origins.check_url(
        start.new_user_url.as_deref(),
        Code::InvalidNewUserCallbackUrl,
    )?;
    origins.check_url(start.error_url.as_deref(), Code::InvalidErrorCallbackUrl)?;
    if provider != GITHUB || state.social.github.is_none() {
        return Err(AuthError::not_found(Code::ProviderNotFound));
    }
    if id_token {
        return Err(AuthError::not_found(Code::IdTokenNotSupported));
    }
    let start = Start {
        callback_url: start.callback_url.filter(|u| !u.is_empty()),
        new_user_url: start.new_user_url.filter(|u| !u.is_empty()),
        error_url: start.error_url.filter(|u| !u.is_empty()),
        ..start
    };
    begin(state, start, link).await
}

/// Writes the state row; the answer carries the authorize URL and the signed state cookie.
async fn begin(state: &AuthState, start: Start, link: Option<LinkData>) -> AuthResult<Started> {
    let github = github_of(state)?;
    let now = state.now();
    let oauth_state = github::new_state();
    let code_verifier = github::new_code_verifier();
    let url = github.authorize_url(
        &oauth_state,
        &code_verifier,
        &start.scopes,
        start.login_hint.as_deref(),
    );
    let expires_at = flow::state_expiry(now);
    let data = StateData {
        // Better Auth's default: the base URL's origin.
        callback_url: start
            .callback_url
            .unwrap_or_else(|| state.origins.base_origin().to_owned()),
        code_verifier,
        error_url: start.error_url,
        new_user_url: start.new_user_url,
        expires_at: expires_at.timestamp_millis(),
        oauth_state: oauth_state.clone(),
        link,
        request_sign_up: start.request_sign_up,
    };
    let value = serde_json::to_string(&data).map_err(|e| AuthError::Internal(e.to_string()))?;
    let identifier = format!("{STATE_PREFIX}{oauth_state}");
    state
        .db(move |conn| {
            store::insert_verification(
                conn,
                &NewVerification {
                    id: &random::id(),
                    identifier: &identifier,
                    value: &value,
                    expires_at,
                    created_at: now,
                    updated_at: now,
                },
            )
        })
        .await?;
    Ok(Started { url, oauth_state })
}

/// The callback's query parameters (the first non-empty value of each).
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Where a finished flow sends the browser.
pub enum Finished {
    Linked {
        target: String,
    },
    /// To `callbackURL` (`newUserCallbackURL` for a new user) with this new session.
    SignedIn {
        target: String,
        session: Session,
    },
}

/// A failed callback: where to send the browser and why.
pub struct Failure {
    pub target: String,
    pub error: String,
    pub description: Option<String>,
    /// Expire the state cookie (not when it belongs to another flow in this browser).
    pub clear_state: bool,
}

impl Failure {
    fn new(target: &str, error: CallbackError) -> Self {
        Self {
            target: target.to_owned(),
            error: error.code().to_owned(),
            description: None,
            clear_state: true,
        }
    }
}

/// Finishes the flow GitHub sends the browser back to: state (`cookie_state` is the browser's
/// signed state cookie), code exchange, profile, the linking rules, a session.
pub async fn finish(
    state: &AuthState,
    client: &Client,
    provider: &str,
    params: &CallbackParams,
    cookie_state: Option<String>,
) -> Result<Finished, Failure> {
    let base_error = &format!("{}/error", state.base_api_url());
    let github = match &state.social.github {
        Some(github) if provider == GITHUB => github,
        _ => {
            return Err(Failure::new(
                base_error,
                CallbackError::OauthProviderNotFound,
            ));
        }
    };
    let Some(oauth_state) = params.state.clone() else {
        return Err(Failure::new(base_error, CallbackError::StateNotFound));
    };
    let identifier = format!("{STATE_PREFIX}{oauth_state}");
    let internal = |e: AuthError| {
        tracing::error!(error = %e, "OAuth callback failed");
        Failure::new(base_error, CallbackError::InternalServerError)
    };

    // The state must be the one this browser was given: otherwise someone else's flow is being
    // finished here (login CSRF). That flow's row stays, as in Better Auth.
    let same_browser = cookie_state
        .as_deref()
        .is_some_and(|c| constant_time_eq(c.as_bytes(), oauth_state.as_bytes()));
    if !same_browser {
        let id = identifier.clone();
        let row = state
            .db(move |conn| store::newest_verification(conn, &id))
            .await
            .map_err(internal)?;
        let target = row
            .and_then(|r| serde_json::from_str::<StateData>(&r.value).ok())
            .and_then(|d| d.error_url)
            .filter(|u| state.origins.allows_redirect(u))
            .unwrap_or_else(|| base_error.to_owned());
        return Err(Failure {
            clear_state: false,
            ..Failure::new(&target, CallbackError::StateMismatch)
        });
    }

    // Consumed in one statement: a replay finds nothing.
    let id = identifier.clone();
    let row = state
        .db(move |conn| store::take_verification(conn, &id))
        .await
        .map_err(internal)?;
    let Some(data) = row
        .as_ref()
        .and_then(|r| serde_json::from_str::<StateData>(&r.value).ok())
    else {
        return Err(Failure::new(base_error, CallbackError::StateMismatch));
    };
    // Redirect targets were checked when the flow started; check again, so a row written
    // before the trusted origins changed (or by another server) cannot redirect anywhere.
    let allowed = |u: &str| state.origins.allows_redirect(u);
    let error_target = data
        .error_url
        .clone()
        .filter(|u| allowed(u))
        .unwrap_or_else(|| base_error.to_owned());
    let now = state.now();
    let row_expired = row.as_ref().is_some_and(|r| r.expires_at < now);
    if row_expired || data.expires_at < now.timestamp_millis() {
        return Err(Failure::new(&error_target, CallbackError::StateMismatch));
    }

    if let Some(error) = params.error.as_deref() {
        return Err(Failure {
            target: error_target,
            error: error.to_owned(),
            description: params.error_description.clone(),
            clear_state: true,
        });
    }
    let Some(code) = params.code.as_deref() else {
        return Err(Failure::new(&error_target, CallbackError::NoCode));
    };
    if !allowed(&data.callback_url) {
        return Err(Failure::new(&error_target, CallbackError::NoCallbackUrl));
    }

    let tokens = github
        .exchange_code(code, &data.code_verifier)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "GitHub code exchange failed");
            Failure::new(&error_target, CallbackError::InvalidCode)
        })?;
    let profile = github.profile(&tokens.access_token).await.map_err(|e| {
        tracing::warn!(error = %e, "GitHub user info failed");
        Failure::new(&error_target, CallbackError::UnableToGetUserInfo)
    })?;
    let Some(email) = profile.email.clone() else {
        return Err(Failure::new(&error_target, CallbackError::EmailNotFound));
    };
    // GitHub's lifetimes are provider input: clamped, never an overflowing `now + delta`.
    let expiry = |d: std::time::Duration| expires_after(now, d.as_secs());
    let account = ProviderAccount {
        provider_id: GITHUB,
        account_id: profile.id,
        email,
        email_verified: profile.email_verified,
        name: profile.name,
        image: profile.image,
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        access_token_expires_at: tokens.expires_in.map(expiry),
        refresh_token_expires_at: tokens.refresh_token_expires_in.map(expiry),
        scopes: tokens.scopes.clone(),
    };
    let vault = state.social.vault.clone();
    let linking = state.auth().account_linking.clone();

    let decision = match data.link.clone() {
        Some(link) => {
            // A link state without a session id was written by Better Auth (it encrypts the
            // session token instead): this browser's own session must then be the linker's.
            let session_ok = match link.session_id {
                Some(_) => true,
                None => state
                    .current_session(client)
                    .await
                    .map_err(internal)?
                    .is_some_and(|s| s.user.id == link.user_id),
            };
            state
                .write(move |w| flow::link(w, &vault, &linking, &link, session_ok, &account, now))
                .await
        }
        None => {
            // Better Auth: `disableImplicitSignUp && !requestSignUp || disableSignUp`.
            let github = &state.auth().github;
            let sign_up = !(github.disable_sign_up
                || (github.disable_implicit_sign_up && !data.request_sign_up));
            // Signing in may mark the user verified: the writer forgets them then.
            state
                .write(move |w| flow::sign_in(w, &vault, &linking, sign_up, &account, now))
                .await
        }
    };
    match decision {
        Ok(Decision::Rejected(why)) => Err(Failure::new(&error_target, why)),
        Ok(Decision::Linked) => Ok(Finished::Linked {
            target: data.callback_url,
        }),
        Ok(Decision::SignIn { user, created }) => {
            // A user GitHub could not vouch for gets the verification mail sign-up sends.
            if created && !user.email_verified && state.auth().send_on_sign_up() {
                mail_verification(
                    state,
                    client,
                    &user,
                    &user.email,
                    Some(data.callback_url.as_str()),
                );
            }
            let session = state
                .create_session(&user.id, true, client)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "creating the session after GitHub sign-in");
                    Failure::new(&error_target, CallbackError::UnableToCreateSession)
                })?;
            let target = match data.new_user_url.as_deref() {
                Some(url) if created && allowed(url) => url,
                _ => data.callback_url.as_str(),
            };
            Ok(Finished::SignedIn {
                target: target.to_owned(),
                session,
            })
        }
        Err(AuthError::Db(DbError::Conflict(constraint))) => {
            // A user with this email appeared between our look-up and insert (a racing email
            // sign-up): refuse rather than guess.
            tracing::warn!(%constraint, "GitHub sign-in raced another write");
            Err(Failure::new(
                &error_target,
                CallbackError::UnableToCreateUser,
            ))
        }
        Err(e) => Err(internal(e)),
    }
}
