//! Live bodies against the OpenAPI document's schemas, with a real JSON Schema validator
//! (the `jsonschema` crate, draft 2020-12 — what OpenAPI 3.1 schemas are — with `format`
//! checked: `uuid`, `date-time`).

use serde_json::{Value, json};

/// Every violation of `schema` (a schema of the OpenAPI document `doc`, whose `$ref`s point
/// into `#/components/...`) by `v`, each with its JSON path; empty when valid.
pub fn check(v: &Value, schema: &Value, doc: &Value) -> Vec<String> {
    // The document's components travel with the schema, so `#/components/schemas/X` resolves.
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}\n{schema}"));
    validator.iter_errors(v).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// Asserts a live response matches the document's schema for `path` / `method` / `status`.
pub fn assert_matches(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "the OpenAPI document does not describe {method} {path} -> {status}");
    let errors = check(body, schema, doc);
    assert!(
        errors.is_empty(),
        "{method} {path} -> {status} does not match the document:\n{}\n{body}",
        errors.join("\n")
    );
}
