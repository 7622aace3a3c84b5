//! MCP authorization (spec §5.5) through the connectors API and the CLI: the full flow against
//! the SDK's real OAuth example server (challenge → metadata → dynamic registration → PKCE +
//! `resource` → callback → complete → tools), state reuse, another user redeeming the code,
//! refresh and step-up against a stand-in, the SSRF guard on discovered URLs, `iss`, and no
//! token in any table in plaintext.
//! Split by flow: here the helpers; `flow` (the whole flow through the API and the CLI);
//! `tokens` (refresh, step-up, `iss`, the SSRF guard on discovered URLs); `registration` (how
//! the client is registered: metadata document, pre-registered, dynamic); `upkeep` (key
//! rotation, the sweep of expired flows).

mod flow;
mod registration;
mod tokens;
mod upkeep;

use super::mcp_oauth_stand_ins::{Behaviour, OAuthStandIn, SdkOAuthServer};
use super::{APP_ORIGIN, World, query};
use crate::common::Seen;
use crate::common::mcp::{ada_with_server, add_id, add_ok, call, call_ok};
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use switchboard::platform::role::Role;
use url::Url;

const CALLBACK: &str = "http://connectors.test/api/mcp-servers/callback";

async fn authorize(w: &mut World, user: &str, id: &str, body: Value) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri(&format!("/api/mcp-servers/{id}/authorize"))
            .set_json(body),
    )
    .await
}

async fn authorize_url(w: &mut World, user: &str, id: &str) -> Url {
    let res = authorize(
        w,
        user,
        id,
        json!({ "redirect_to": format!("{APP_ORIGIN}/done") }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    Url::parse(res.json()["url"].as_str().unwrap()).unwrap()
}

/// The browser at the authorization server: its answer's `Location` (it auto-approves).
async fn follow(url: &Url) -> Url {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(url.clone()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302, "{:?}", res.text().await);
    Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

/// The browser arriving at our callback (no bearer token).
async fn callback(w: &mut World, location: &Url) -> Seen {
    let path = format!("{}?{}", location.path(), location.query().unwrap_or(""));
    w.app
        .call(Role::Connectors, TestRequest::get().uri(&path))
        .await
}

/// The browser at the authorization server, then at our callback: the one-time code.
async fn code_from(w: &mut World, url: &Url) -> String {
    let back = follow(url).await;
    let res = callback(w, &back).await;
    w.authorized_code(&res)
}

async fn complete(w: &mut World, user: &str, code: &str) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri("/api/mcp-servers/complete")
            .set_json(json!({ "code": code })),
    )
    .await
}

/// [`complete`], which must answer 200.
async fn complete_ok(w: &mut World, user: &str, code: &str) -> Seen {
    let res = complete(w, user, code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    res
}

/// authorize → the authorization server → our callback → the one-time code.
async fn grant_code(w: &mut World, user: &str, id: &str) -> String {
    let url = authorize_url(w, user, id).await;
    code_from(w, &url).await
}

fn dump(w: &World) -> String {
    let tables = w.sql_texts(
        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
    );
    let mut out = String::new();
    for table in &tables {
        for row in w.sql_texts(&format!(
            "SELECT row_to_json(x)::text AS t FROM \"{table}\" x"
        )) {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}
