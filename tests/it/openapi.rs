//! Both roles' OpenAPI documents are valid enough for generators and validators: unique
//! operation ids, every security scheme an operation names is defined, every `$ref` resolves.
//! (`scripts/check-openapi` runs the full openapi-spec-validator against a started binary.)

use crate::common::TestApp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use switchboard::platform::role::Role;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every problem in `doc`, so one run lists them all.
fn problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut requirements: Vec<(String, &Value)> = Vec::new();
    if let Some(global) = doc.get("security") {
        requirements.push(("(document)".to_owned(), global));
    }
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let at = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                Some(id) if !id.is_empty() => {
                    ids.entry(id.to_owned()).or_default().push(at.clone())
                }
                _ => problems.push(format!("{at}: no operationId")),
            }
            if let Some(security) = op.get("security") {
                requirements.push((at, security));
            }
        }
    }
    for (id, at) in ids {
        if at.len() > 1 {
            problems.push(format!("operationId `{id}` is used by {}", at.join(", ")));
        }
    }
    for (at, security) in requirements {
        for requirement in security.as_array().into_iter().flatten() {
            for name in requirement
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                if !schemes.contains(name.as_str()) {
                    problems.push(format!(
                        "{at}: security scheme `{name}` is not in components.securitySchemes"
                    ));
                }
            }
        }
    }
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    for reference in refs {
        let resolved = reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer));
        if resolved.is_none() {
            problems.push(format!("$ref `{reference}` does not resolve"));
        }
    }
    problems
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn every_role_document_has_unique_ids_defined_schemes_and_resolving_refs() {
    let mut app = TestApp::new();
    let mut roles = Vec::new();
    if cfg!(feature = "auth") {
        roles.push(Role::Auth);
    }
    if cfg!(feature = "connectors") {
        roles.push(Role::Connectors);
    }
    let mut all = Vec::new();
    for role in roles {
        let res = app.get(role, "/openapi.json").await;
        assert_eq!(res.status, 200, "{role}");
        let doc = res.json();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        all.extend(problems(&doc).into_iter().map(|p| format!("{role}: {p}")));
    }
    assert!(all.is_empty(), "{all:#?}");
}

#[test]
fn the_checker_finds_what_it_looks_for() {
    let doc = serde_json::json!({
        "paths": {
            "/a": { "get": { "operationId": "list", "security": [{ "bearer": [] }] } },
            "/b": { "get": { "operationId": "list",
                "responses": { "200": { "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Missing" } } } } } } },
            "/c": { "post": {} }
        }
    });
    let found = problems(&doc);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("`list` is used by GET /a, GET /b"))
    );
    assert!(found.iter().any(|p| p.contains("`bearer` is not in")));
    assert!(found.iter().any(|p| p.contains("Missing")));
    assert!(found.iter().any(|p| p.contains("POST /c: no operationId")));
}
