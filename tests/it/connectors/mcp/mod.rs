//! MCP servers and tools through the connectors API, against real servers on 127.0.0.1:
//! server-everything (legacy era) and a modern-era stand-in. Era detection, pagination,
//! isError, arguments refused before sending, legacy session expiry, the SSRF guard,
//! ownership, sealed credentials, and the call record.
//! Split by flow: here the helpers; `eras` (detection, legacy sessions, pagination, a dropped
//! connection); `access` (ownership, sealed credentials, the SSRF guard, the catalog);
//! `calls` (limits, the call record and its cache, the `mcp` CLI, OpenAPI).

mod access;
mod calls;
mod eras;

use super::World;
// `self`: a test names `super::mcp_stand_ins::LegacyResponder`, as it did from `connectors`.
use super::mcp_stand_ins::{self, Dropping, Everything, Modern};
use crate::common::Seen;
use crate::common::mcp::{ada_with_server, add, add_id, add_ok, call, call_ok};
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn get(w: &mut World, user: &str, path: &str) -> Seen {
    w.send(user, TestRequest::get().uri(path)).await
}

fn tool_names(res: &Seen) -> Vec<String> {
    res.json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}
