//! The connectors role: connecting accounts over OAuth against local provider stand-ins,
//! the token vault, refresh, and ownership.

mod agents;
mod binding;
mod flow;
mod lease;
mod lifecycle;
mod linear_agent;
mod mcp;
mod mcp_auth;
mod mcp_oauth_stand_ins;
mod mcp_stand_ins;
mod refresh;
mod sweep_job;
mod unconfigured;
mod vault;

use crate::common::jwt::Minter;
use crate::common::stand_in::Provider;
use crate::common::{Seen, TestApp};
use actix_web::test::TestRequest;
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde_json::{Value, json};
use switchboard::platform::clock::Clock;
use switchboard::platform::role::Role;
use url::Url;

pub const APP_ORIGIN: &str = "http://app.test";

pub struct World {
    pub app: TestApp,
    pub minter: Minter,
    pub linear: Provider,
    pub github: Provider,
    /// Every one-time grant code a callback handed out (secrets: never in a table or log).
    pub grant_codes: Vec<String>,
}

impl World {
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    pub async fn with_env(extra: &[(&str, &str)]) -> Self {
        let minter = Minter::start().await;
        let linear = Provider::start().await;
        let github = Provider::start().await;
        let mut env: Vec<(String, String)> = vec![
            ("AUTH_JWKS_URL".into(), minter.jwks_url()),
            ("CORS_ORIGINS".into(), APP_ORIGIN.into()),
            ("CONNECTORS_URL".into(), "http://connectors.test".into()),
        ];
        env.extend(linear.linear_env());
        env.extend(github.github_env());
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = TestApp::with_env(&refs);
        Self {
            app,
            minter,
            linear,
            github,
            grant_codes: Vec::new(),
        }
    }

    /// Inserts a `"user"` row (connections reference it) and returns its id.
    pub fn user(&self, id: &str) -> String {
        let mut conn = self.app.db.conn();
        diesel::sql_query(
            "INSERT INTO \"user\" (id, name, email) VALUES ($1, $1, $1 || '@example.com')",
        )
        .bind::<Text, _>(id)
        .execute(&mut conn)
        .unwrap();
        id.to_owned()
    }

    pub fn bearer(&self, user: &str) -> (String, String) {
        (
            "authorization".into(),
            format!("Bearer {}", self.minter.token(user, self.app.clock.now())),
        )
    }

    pub async fn send(&mut self, user: &str, req: TestRequest) -> Seen {
        let auth = self.bearer(user);
        self.app
            .call(Role::Connectors, req.insert_header(auth))
            .await
    }

    /// `POST /api/connections/{provider}/authorize`; returns the authorize URL.
    pub async fn authorize(&mut self, user: &str, provider: &str, body: Value) -> Url {
        let res = self
            .send(
                user,
                TestRequest::post()
                    .uri(&format!("/api/connections/{provider}/authorize"))
                    .set_json(body),
            )
            .await;
        assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
        Url::parse(res.json()["url"].as_str().unwrap()).unwrap()
    }

    /// The provider's redirect back, as the browser makes it (no bearer token).
    pub async fn callback(&mut self, provider: &str, query: &str) -> Seen {
        self.app
            .call(
                Role::Connectors,
                TestRequest::get().uri(&format!("/api/connections/{provider}/callback?{query}")),
            )
            .await
    }

    /// `POST /api/connections/complete {code}` as `user`.
    pub async fn complete(&mut self, user: &str, code: &str) -> Seen {
        self.send(
            user,
            TestRequest::post()
                .uri("/api/connections/complete")
                .set_json(json!({ "code": code })),
        )
        .await
    }

    /// The callback's redirect back to the app: asserts `status=authorized` and returns the
    /// one-time code.
    pub fn authorized_code(&mut self, res: &Seen) -> String {
        assert_eq!(res.status, 302, "{:?}", String::from_utf8_lossy(&res.body));
        let location = Url::parse(res.header("location").unwrap()).unwrap();
        assert_eq!(query(&location, "status").as_deref(), Some("authorized"));
        assert!(query(&location, "connection_id").is_none());
        let code = query(&location, "code").unwrap();
        self.grant_codes.push(code.clone());
        code
    }

    /// A whole Linear connect: authorize, the provider's consent (simulated), the callback,
    /// and the owner redeeming the callback's code. Returns the connection id.
    pub async fn connect_linear(
        &mut self,
        user: &str,
        code: &str,
        access: &str,
        refresh: &str,
        viewer: &str,
        org: &str,
    ) -> String {
        self.linear.linear_code(code, access, refresh).await;
        self.linear.linear_viewer(access, viewer, org, "Acme").await;
        let url = self
            .authorize(
                user,
                "linear",
                json!({ "redirect_to": format!("{APP_ORIGIN}/done") }),
            )
            .await;
        let state = query(&url, "state").unwrap();
        let res = self
            .callback("linear", &format!("code={code}&state={state}"))
            .await;
        let grant = self.authorized_code(&res);
        let done = self.complete(user, &grant).await;
        assert_eq!(
            done.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&done.body)
        );
        let body = done.json();
        assert_eq!(body["status"], "connected");
        body["connection"]["id"].as_str().unwrap().to_owned()
    }

    /// Raw SQL against the test database.
    pub fn sql_texts(&self, sql: &str) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            t: String,
        }
        let mut conn = self.app.db.conn();
        diesel::sql_query(sql)
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| r.t)
            .collect()
    }

    pub fn exec(&self, sql: &str) -> usize {
        let mut conn = self.app.db.conn();
        diesel::sql_query(sql).execute(&mut conn).unwrap()
    }

    /// A second, independent connectors state over the same database: another process.
    pub fn another_process(&self) -> switchboard::connectors::ConnectorsState {
        switchboard::connectors::ConnectorsState::new(&self.app.platform).unwrap()
    }
}

pub fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
