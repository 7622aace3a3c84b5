//! A small JSON Schema validator for tool arguments, checked before a call is sent. It covers the
//! keywords tool input schemas use (type, properties, required, additionalProperties, items,
//! enum, const, length/size/range bounds, allOf/anyOf/oneOf, not); anything else — `$ref`,
//! `format`, `pattern` — is left to the server, which validates again. Depth is bounded, so no
//! schema or argument can exhaust the stack.

use serde_json::{Map, Value};

const MAX_DEPTH: usize = 32;
const MAX_ERRORS: usize = 5;

/// Every violation found (at most a few), as `path: problem`.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    check(schema, value, "$", 0, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        errors.truncate(MAX_ERRORS);
        Err(errors)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    let actual = type_name(v);
    actual == t || (t == "number" && actual == "integer")
}

fn check(schema: &Value, value: &Value, path: &str, depth: usize, errors: &mut Vec<String>) {
    if errors.len() >= MAX_ERRORS {
        return;
    }
    if depth > MAX_DEPTH {
        errors.push(format!("{path}: nested too deeply"));
        return;
    }
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{path}: no value is allowed here"));
            return;
        }
        Value::Object(s) => s,
        _ => return,
    };
    match s.get("type") {
        Some(Value::String(t)) if !has_type(value, t) => {
            errors.push(format!("{path}: expected {t}, got {}", type_name(value)));
            return;
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| has_type(value, t)) =>
        {
            errors.push(format!(
                "{path}: got {}, not an allowed type",
                type_name(value)
            ));
            return;
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        errors.push(format!("{path}: not one of the allowed values"));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        errors.push(format!("{path}: must equal the constant value"));
    }
    match value {
        Value::Object(obj) => check_object(s, obj, path, depth, errors),
        Value::Array(items) => check_array(s, items, path, depth, errors),
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                errors.push(format!("{path}: shorter than minLength"));
            }
            if s.get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                errors.push(format!("{path}: longer than maxLength"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let bound = |k: &str| s.get(k).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|m| x < m)
                || bound("exclusiveMinimum").is_some_and(|m| x <= m)
            {
                errors.push(format!("{path}: below the minimum"));
            }
            if bound("maximum").is_some_and(|m| x > m)
                || bound("exclusiveMaximum").is_some_and(|m| x >= m)
            {
                errors.push(format!("{path}: above the maximum"));
            }
        }
        _ => {}
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            check(sub, value, path, depth + 1, errors);
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf")
        && !any.iter().any(|sub| passes(sub, value, depth))
    {
        errors.push(format!("{path}: matches none of anyOf"));
    }
    if let Some(Value::Array(one)) = s.get("oneOf")
        && one.iter().filter(|sub| passes(sub, value, depth)).count() != 1
    {
        errors.push(format!("{path}: must match exactly one of oneOf"));
    }
    if let Some(not) = s.get("not")
        && passes(not, value, depth)
    {
        errors.push(format!("{path}: matches a schema it must not"));
    }
}

fn passes(schema: &Value, value: &Value, depth: usize) -> bool {
    let mut errs = Vec::new();
    check(schema, value, "", depth + 1, &mut errs);
    errs.is_empty()
}

fn check_object(
    s: &Map<String, Value>,
    obj: &Map<String, Value>,
    path: &str,
    depth: usize,
    errors: &mut Vec<String>,
) {
    if let Some(Value::Array(required)) = s.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                errors.push(format!("{path}.{name}: is required"));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (key, val) in obj {
        let sub_path = format!("{path}.{key}");
        match props.and_then(|p| p.get(key)) {
            Some(sub) => check(sub, val, &sub_path, depth + 1, errors),
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    errors.push(format!("{sub_path}: is not an allowed property"))
                }
                Some(sub @ Value::Object(_)) => check(sub, val, &sub_path, depth + 1, errors),
                _ => {}
            },
        }
    }
    let n = obj.len() as u64;
    if s.get("minProperties")
        .and_then(Value::as_u64)
        .is_some_and(|m| n < m)
    {
        errors.push(format!("{path}: too few properties"));
    }
    if s.get("maxProperties")
        .and_then(Value::as_u64)
        .is_some_and(|m| n > m)
    {
        errors.push(format!("{path}: too many properties"));
    }
}

fn check_array(
    s: &Map<String, Value>,
    items: &[Value],
    path: &str,
    depth: usize,
    errors: &mut Vec<String>,
) {
    let n = items.len() as u64;
    if s.get("minItems")
        .and_then(Value::as_u64)
        .is_some_and(|m| n < m)
    {
        errors.push(format!("{path}: fewer than minItems"));
    }
    if s.get("maxItems")
        .and_then(Value::as_u64)
        .is_some_and(|m| n > m)
    {
        errors.push(format!("{path}: more than maxItems"));
    }
    if let Some(item_schema) = s.get("items").filter(|i| i.is_object() || i.is_boolean()) {
        for (i, item) in items.iter().enumerate() {
            check(
                item_schema,
                item,
                &format!("{path}[{i}]"),
                depth + 1,
                errors,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_sum_schema() {
        let schema = json!({"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
            "properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]});
        assert!(validate(&schema, &json!({"a":1,"b":2.5})).is_ok());
        let errs = validate(&schema, &json!({"a":"1"})).unwrap_err();
        assert!(errs.iter().any(|e| e == "$.b: is required"), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.starts_with("$.a: expected number")),
            "{errs:?}"
        );
        assert!(validate(&schema, &json!([1])).is_err());
    }

    #[test]
    fn combinators_and_bounds() {
        let schema = json!({"type":"object","additionalProperties":false,"properties":{
            "kind":{"enum":["a","b"]},
            "n":{"type":"integer","minimum":1,"maximum":3},
            "tags":{"type":"array","items":{"type":"string","maxLength":2},"maxItems":2},
            "x":{"anyOf":[{"type":"string"},{"type":"null"}]}}});
        assert!(validate(&schema, &json!({"kind":"a","n":2,"tags":["ab"],"x":null})).is_ok());
        assert!(validate(&schema, &json!({"kind":"c"})).is_err());
        assert!(validate(&schema, &json!({"n":2.5})).is_err());
        assert!(validate(&schema, &json!({"n":4})).is_err());
        assert!(validate(&schema, &json!({"tags":["abc"]})).is_err());
        assert!(validate(&schema, &json!({"x":1})).is_err());
        assert!(validate(&schema, &json!({"extra":1})).is_err());
    }

    #[test]
    fn deep_values_do_not_overflow() {
        let mut schema = json!({"type":"array"});
        for _ in 0..200 {
            schema = json!({"type":"array","items":schema});
        }
        let mut value = json!([]);
        for _ in 0..200 {
            value = json!([value]);
        }
        assert!(validate(&schema, &value).is_err());
    }
}
