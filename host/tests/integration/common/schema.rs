//! A small JSON Schema checker for the OpenAPI subset the gateway's document uses:
//! `$ref`, `type` (one or several), `required`, `properties`, `items`, `oneOf`, `allOf`.

use serde_json::Value;

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Every violation of `schema` by `v` (empty when valid), with JSON paths.
pub fn check(v: &Value, schema: &Value, root: &Value, path: &str) -> Vec<String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r.trim_start_matches("#/").split('/').fold(root, |node, part| &node[part]);
        assert!(!target.is_null(), "dangling $ref {r}");
        return check(v, target, root, path);
    }
    let mut errors = Vec::new();
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            errors.extend(check(v, s, root, path));
        }
    }
    if let Some(any) = schema.get("oneOf").and_then(Value::as_array)
        && !any.iter().any(|s| check(v, s, root, path).is_empty())
    {
        errors.push(format!("{path}: matches none of oneOf"));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(v, t)) {
        errors.push(format!("{path}: expected {types:?}, got {v}"));
        return errors;
    }
    if let Some(obj) = v.as_object() {
        for req in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(req) {
                errors.push(format!("{path}: missing `{req}`"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                if let Some(field) = obj.get(k) {
                    errors.extend(check(field, s, root, &format!("{path}.{k}")));
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            errors.extend(check(item, items, root, &format!("{path}[{i}]")));
        }
    }
    errors
}

/// Asserts a live response matches the document's schema for `path` / `method` / `status`.
pub fn assert_matches(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "the OpenAPI document does not describe {method} {path} -> {status}");
    let errors = check(body, schema, doc, "$");
    assert!(
        errors.is_empty(),
        "{method} {path} -> {status} does not match the document:\n{}\n{body}",
        errors.join("\n")
    );
}
