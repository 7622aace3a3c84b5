//! The GitHub OAuth app client (connectors-protocols §3): the authorize URL with state and PKCE
//! S256, the code exchange through oauth2 (GitHub's errors come back as HTTP 200 with an `error`
//! field), and the `/user` + `/user/emails` profile. Every URL comes from configuration.

use crate::auth::config::GithubConfig;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, HttpRequest,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What Better Auth asks GitHub for; configured and per-request scopes are added.
pub const DEFAULT_SCOPES: [&str; 2] = ["read:user", "user:email"];

/// GitHub requires a User-Agent on API calls and rejects requests without one.
const USER_AGENT: &str = "switchboard-auth";

/// GitHub App user tokens also say when their refresh token expires (OAuth app tokens carry
/// neither this nor `expires_in`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GithubTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_in: Option<u64>,
}
impl ExtraTokenFields for GithubTokenFields {}

type GithubTokenResponse = StandardTokenResponse<GithubTokenFields, BasicTokenType>;

type OAuthClient = Client<
    BasicErrorResponse,
    GithubTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why a GitHub call failed; the callback maps each to Better Auth's error code.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// The code exchange failed: GitHub's `error` (also when it came in a 200), a transport
    /// failure or a response that is not a token.
    #[error("code exchange failed: {0}")]
    Exchange(String),
    #[error("GET /user failed: {0}")]
    UserInfo(String),
    #[error("invalid GitHub configuration: {0}")]
    Config(String),
}

/// Tokens from a successful exchange. `Debug` shows no token.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
    pub refresh_token_expires_in: Option<Duration>,
    /// As granted: GitHub answers `scope` comma-separated.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The user as Better Auth maps GitHub's profile (spec §8.3 step 6).
#[derive(Debug, Clone)]
pub struct Profile {
    /// `String(profile.id)`: the account id.
    pub id: String,
    /// Lower-cased; `None` when GitHub gave no email at all.
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: String,
    pub image: Option<String>,
}

#[derive(Deserialize)]
struct UserResponse {
    id: serde_json::Value,
    login: Option<String>,
    name: Option<String>,
    email: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct EmailEntry {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

pub struct Github {
    oauth: OAuthClient,
    http: reqwest::Client,
    api_url: String,
    extra_scopes: Vec<String>,
}

/// A new random PKCE verifier: 128 characters of `[A-Za-z0-9_-]`, as Better Auth makes them.
pub fn new_code_verifier() -> String {
    crate::crypto::random::string_from(crate::crypto::random::URL_SAFE, 128)
}

/// A new random OAuth `state`: 32 characters of `[A-Za-z0-9_-]`.
pub fn new_state() -> String {
    crate::crypto::random::string_from(crate::crypto::random::URL_SAFE, 32)
}

impl Github {
    /// `None` when GitHub sign-in is not configured (client id or secret missing).
    pub fn from_config(
        config: &GithubConfig,
        redirect_uri: &str,
    ) -> Result<Option<Self>, GithubError> {
        let (Some(id), Some(secret)) = (
            config.client_id.as_deref().filter(|s| !s.is_empty()),
            config.client_secret.as_ref().filter(|s| !s.is_empty()),
        ) else {
            return Ok(None);
        };
        let bad = |what: &str, e: url::ParseError| GithubError::Config(format!("{what}: {e}"));
        let oauth = Client::new(ClientId::new(id.to_owned()))
            .set_client_secret(ClientSecret::new(secret.expose().to_owned()))
            .set_auth_uri(
                AuthUrl::new(config.authorize_url.clone()).map_err(|e| bad("authorize_url", e))?,
            )
            .set_token_uri(
                TokenUrl::new(config.token_url.clone()).map_err(|e| bad("token_url", e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| bad("redirect_uri", e))?,
            )
            // Better Auth (and GitHub's docs) send the credentials in the form body.
            .set_auth_type(AuthType::RequestBody);
        let http = reqwest::Client::builder()
            // An OAuth endpoint that redirects is misconfigured or hostile: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| GithubError::Config(format!("HTTP client: {e}")))?;
        Ok(Some(Self {
            oauth,
            http,
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            extra_scopes: config.scopes.iter().map(|s| s.trim().to_owned()).collect(),
        }))
    }

    /// The URL the browser is sent to: `response_type=code`, client id, `state`, PKCE S256,
    /// `redirect_uri`, and the default, configured and requested scopes (space-separated).
    pub fn authorize_url(
        &self,
        state: &str,
        code_verifier: &str,
        requested_scopes: &[String],
        login_hint: Option<&str>,
    ) -> String {
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            code_verifier.to_owned(),
        ));
        let mut scopes: Vec<String> = DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        for scope in self.extra_scopes.iter().chain(requested_scopes) {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let state = state.to_owned();
        let mut request = self
            .oauth
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(scopes.into_iter().map(Scope::new))
            .set_pkce_challenge(challenge);
        if let Some(hint) = login_hint {
            // GitHub's name for the account suggestion (Better Auth sends `login_hint`, which
            // GitHub ignores).
            request = request.add_extra_param("login", hint.to_owned());
        }
        request.url().0.into()
    }

    /// Exchanges the code (with the PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
    ) -> Result<Tokens, GithubError> {
        let http = &self.http;
        // GitHub answers errors with 200 and `{error, error_description}`. Turning such a
        // response into the 400 RFC 6749 prescribes lets oauth2 read it as the error it is.
        let client = move |request: HttpRequest| async move {
            let mut response = http.call(request).await?;
            if response.status() == oauth2::http::StatusCode::OK && is_error_body(response.body()) {
                *response.status_mut() = oauth2::http::StatusCode::BAD_REQUEST;
            }
            Ok::<_, HttpClientError<reqwest::Error>>(response)
        };
        let response = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(code_verifier.to_owned()))
            .request_async(&client)
            .await
            .map_err(|e| {
                GithubError::Exchange(match e {
                    RequestTokenError::ServerResponse(err) => {
                        let described = err
                            .error_description()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default();
                        format!("GitHub said {}{described}", err.error())
                    }
                    RequestTokenError::Request(err) => format!("request failed: {err}"),
                    RequestTokenError::Parse(err, _) => format!("not a token response: {err}"),
                    RequestTokenError::Other(other) => other,
                })
            })?;
        let scopes = response
            .scopes()
            .map(|s| {
                s.iter()
                    .flat_map(|scope| scope.split([',', ' ']))
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Tokens {
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            expires_in: response.expires_in(),
            refresh_token_expires_in: response
                .extra_fields()
                .refresh_token_expires_in
                .map(Duration::from_secs),
            scopes,
        })
    }

    /// `GET /user` and `GET /user/emails`, mapped as Better Auth maps them. A failed `/user` is
    /// an error; failed `/user/emails` (say, the user withheld `user:email`) leaves only the
    /// profile's public email, unverified.
    pub async fn profile(&self, access_token: &str) -> Result<Profile, GithubError> {
        let user: UserResponse = self
            .get_json(access_token, "/user")
            .await
            .map_err(GithubError::UserInfo)?;
        let emails: Vec<EmailEntry> = match self
            .get_json(access_token, "/user/emails?per_page=100")
            .await
        {
            Ok(emails) => emails,
            Err(why) => {
                tracing::warn!(%why, "GitHub /user/emails failed; using the profile's email only");
                Vec::new()
            }
        };
        let id = match &user.id {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            _ => return Err(GithubError::UserInfo("no user id".into())),
        };
        let email = user
            .email
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| emails.iter().find(|e| e.primary).map(|e| e.email.clone()))
            .or_else(|| emails.first().map(|e| e.email.clone()))
            .map(|e| e.to_lowercase());
        let email_verified = email.as_deref().is_some_and(|email| {
            emails
                .iter()
                .any(|e| e.verified && e.email.eq_ignore_ascii_case(email))
        });
        let name = user
            .name
            .filter(|n| !n.is_empty())
            .or(user.login)
            .unwrap_or_default();
        Ok(Profile {
            id,
            email,
            email_verified,
            name,
            image: user.avatar_url,
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &str,
        path: &str,
    ) -> Result<T, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("status {status}"));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| format!("unexpected body: {e}"))
    }
}

fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("error").is_some_and(|e| !e.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_have_better_auths_shapes() {
        let v = new_code_verifier();
        assert_eq!(v.len(), 128);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let s = new_state();
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn recognises_errors_in_a_200() {
        assert!(is_error_body(
            br#"{"error":"bad_verification_code","error_description":"x"}"#
        ));
        assert!(!is_error_body(
            br#"{"access_token":"gho_x","token_type":"bearer","scope":""}"#
        ));
        assert!(!is_error_body(b"access_token=x"));
    }
}
