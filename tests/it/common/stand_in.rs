//! Local stand-ins for the providers (wiremock on 127.0.0.1): Linear's OAuth token, revoke and
//! GraphQL endpoints, and GitHub's token, `/user` and revoke endpoints, in the shapes of
//! spec §1 and §3. Tests count the requests they received.

use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const CLIENT_ID: &str = "test-client-id";
pub const CLIENT_SECRET: &str = "test-client-secret";

pub struct Provider {
    pub server: MockServer,
}

impl Provider {
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Configuration pointing the Linear provider here.
    pub fn linear_env(&self) -> Vec<(String, String)> {
        let base = self.uri();
        let p = "SWITCHBOARD__CONNECTORS__PROVIDERS__LINEAR__";
        vec![
            ("LINEAR_CLIENT_ID".into(), CLIENT_ID.into()),
            ("LINEAR_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            (
                format!("{p}AUTHORIZE_URL"),
                format!("{base}/oauth/authorize"),
            ),
            (format!("{p}TOKEN_URL"), format!("{base}/oauth/token")),
            (format!("{p}REVOKE_URL"), format!("{base}/oauth/revoke")),
            (format!("{p}GRAPHQL_URL"), format!("{base}/graphql")),
            // Never Linear's real MCP server from a test (this stand-in answers it 404).
            (format!("{p}MCP_URL"), format!("{base}/mcp")),
        ]
    }

    /// Configuration pointing the GitHub provider here.
    pub fn github_env(&self) -> Vec<(String, String)> {
        let base = self.uri();
        let p = "SWITCHBOARD__CONNECTORS__PROVIDERS__GITHUB__";
        vec![
            (format!("{p}CLIENT_ID"), "gh-client".into()),
            (format!("{p}CLIENT_SECRET"), "gh-secret".into()),
            (
                format!("{p}AUTHORIZE_URL"),
                format!("{base}/login/oauth/authorize"),
            ),
            (
                format!("{p}TOKEN_URL"),
                format!("{base}/login/oauth/access_token"),
            ),
            (
                format!("{p}REVOKE_URL"),
                format!("{base}/applications/{{client_id}}/token"),
            ),
            (format!("{p}API_URL"), base.clone()),
        ]
    }

    /// The token endpoint answers `code` with this pair (Linear's shape, 24 h).
    pub async fn linear_code(&self, code: &str, access: &str, refresh: &str) {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .and(body_string_contains(format!("code={code}&")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": access, "token_type": "Bearer", "expires_in": 86399,
                "scope": "read write", "refresh_token": refresh,
            })))
            .mount(&self.server)
            .await;
    }

    /// The token endpoint answers a refresh with `refresh` like this.
    pub async fn linear_refresh(&self, refresh: &str, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains(format!("refresh_token={refresh}&")))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    /// A rotated pair as the refresh response.
    pub fn rotated(access: &str, refresh: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access, "token_type": "Bearer", "expires_in": 86399,
            "scope": "read write", "refresh_token": refresh,
        }))
    }

    /// GraphQL names the account behind `access`.
    pub async fn linear_viewer(&self, access: &str, viewer: &str, org: &str, org_name: &str) {
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .and(header("authorization", format!("Bearer {access}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {
                    "viewer": { "id": viewer, "name": "Ada", "email": "ada@example.com", "displayName": "ada" },
                    "organization": { "id": org, "name": org_name, "urlKey": org_name.to_lowercase() },
                }
            })))
            .mount(&self.server)
            .await;
    }

    pub async fn linear_revoke(&self, status: u16) {
        Mock::given(method("POST"))
            .and(path("/oauth/revoke"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&self.server)
            .await;
    }

    /// Requests received on `path` whose body contains `needle`.
    pub async fn received(&self, on: &str, needle: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == on && String::from_utf8_lossy(&r.body).contains(needle))
            .collect()
    }
}
