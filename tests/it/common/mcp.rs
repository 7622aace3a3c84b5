//! MCP servers through the connectors API as a signed-in user adds and calls them: the steps
//! the MCP, MCP-authorization and agent tests share.

use crate::common::Seen;
use crate::connectors::World;
use actix_web::test::TestRequest;
use serde_json::{Value, json};

/// `POST /api/mcp-servers` as `user`.
pub async fn add(w: &mut World, user: &str, body: Value) -> Seen {
    w.send(
        user,
        TestRequest::post().uri("/api/mcp-servers").set_json(body),
    )
    .await
}

/// [`add`], which must answer 201; returns the server as the API shows it.
pub async fn add_ok(w: &mut World, user: &str, body: Value) -> Value {
    let res = add(w, user, body).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()
}

/// Adds the server at `url` for `user`; returns its id.
pub async fn add_id(w: &mut World, user: &str, url: &str) -> String {
    add_ok(w, user, json!({ "url": url })).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A world with one user, `ada`, who has added the MCP server at `url`: the world, ada's id and
/// the server's id.
pub async fn ada_with_server(url: &str) -> (World, String, String) {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = add_id(&mut w, &ada, url).await;
    (w, ada, id)
}

/// `POST /api/mcp-servers/{server}/tools/{tool}/call` as `user`.
pub async fn call(w: &mut World, user: &str, server: &str, tool: &str, args: Value) -> Seen {
    w.send(
        user,
        TestRequest::post()
            .uri(&format!("/api/mcp-servers/{server}/tools/{tool}/call"))
            .set_json(json!({ "arguments": args })),
    )
    .await
}

/// [`call`], which must answer 200.
pub async fn call_ok(w: &mut World, user: &str, server: &str, tool: &str, args: Value) -> Seen {
    let res = call(w, user, server, tool, args).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    res
}
