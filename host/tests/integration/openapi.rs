//! The OpenAPI document describes the billing, admin and ops endpoints, and the live
//! responses match it (status by status), checked by a JSON Schema validator (`jsonschema`).
//! That the document itself is valid OpenAPI 3.1 is `cargo xtask check-openapi` (CI).

use crate::common;

use common::harness::{ADMIN_TOKEN, TestGateway};
use common::http::send;
use common::money::{CHAT, wait_rows};
use common::scenarios::{fixture, mock};
use common::schema::{assert_matches, check};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn live_responses_match_the_document() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let doc = send("GET", &format!("{}/internal/openapi.json", gw.url), &[], "").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    // A schema that cannot fail is worthless: a wrong body is caught.
    assert!(!check(&json!({ "usd": 1 }), &doc["components"]["schemas"]["Money"], &doc).is_empty());
    let error_schema = &doc["components"]["schemas"]["Error"];
    let without_param = json!({ "error": { "message": "m", "type": "invalid_request_error", "code": null } });
    assert!(!check(&without_param, error_schema, &doc).is_empty());
    let mut error_statuses = std::collections::BTreeSet::new();

    let admin = format!("Bearer {ADMIN_TOKEN}");
    let user = format!("Bearer {}", gw.key);
    let call = |method: &'static str, path: String, auth: &str, body: String| {
        let (url, auth) = (format!("{}{path}", gw.url), auth.to_string());
        async move {
            let r = send(method, &url, &[("authorization", auth.as_str()), ("content-type", "application/json")], body)
                .await;
            (r.status, r.json())
        }
    };
    // Every error body, whatever the document says for its status, is the one `Error` shape.
    let mut check_call = |template: &'static str, method: &'static str, (status, body): (u16, Value)| {
        assert_matches(&doc, template, method, status, &body);
        if status >= 400 {
            let errors = check(&body, error_schema, &doc);
            assert!(
                errors.is_empty(),
                "{method} {template} -> {status} is not an Error:\n{}\n{body}",
                errors.join("\n")
            );
            error_statuses.insert(status);
        }
        body
    };

    // A format is checked too: an id that is not a UUID is caught.
    let tenant = &doc["components"]["schemas"]["Tenant"];
    let created_at = "2026-01-01T00:00:00Z";
    assert!(
        check(
            &json!({ "id": uuid::Uuid::nil(), "name": "n", "status": "active", "created_at": created_at }),
            tenant,
            &doc
        )
        .is_empty()
    );
    assert!(
        !check(&json!({ "id": "nope", "name": "n", "status": "active", "created_at": created_at }), tenant, &doc)
            .is_empty()
    );

    let r = post_chat(&gw).await;
    assert_eq!(r, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(10)).await;
    let t = gw.tenant;

    let tenant = check_call(
        "/admin/tenants",
        "post",
        call("POST", "/admin/tenants".into(), &admin, r#"{"name":"docs"}"#.into()).await,
    );
    let new_tenant = tenant["id"].as_str().unwrap().to_string();
    check_call("/admin/tenants", "post", call("POST", "/admin/tenants".into(), &admin, r#"{"name":""}"#.into()).await);
    let key = check_call(
        "/admin/tenants/{tenant_id}/keys",
        "post",
        call("POST", format!("/admin/tenants/{new_tenant}/keys"), &admin, "{}".into()).await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/keys",
        "get",
        call("GET", format!("/admin/tenants/{new_tenant}/keys"), &admin, String::new()).await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/topups",
        "post",
        call("POST", format!("/admin/tenants/{new_tenant}/topups"), &admin, r#"{"id":"x","amount_usd":"1.5"}"#.into())
            .await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/topups",
        "post",
        call("POST", format!("/admin/tenants/{new_tenant}/topups"), &admin, r#"{"id":"x","amount_usd":"1.5"}"#.into())
            .await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/topups",
        "post",
        call("POST", format!("/admin/tenants/{new_tenant}/topups"), &admin, r#"{"id":"x","amount_usd":"2"}"#.into())
            .await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/adjustments",
        "post",
        call(
            "POST",
            format!("/admin/tenants/{new_tenant}/adjustments"),
            &admin,
            r#"{"id":"a","amount_nano":-5}"#.into(),
        )
        .await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/balance",
        "get",
        call("GET", format!("/admin/tenants/{t}/balance"), &admin, String::new()).await,
    );
    check_call(
        "/admin/tenants/{tenant_id}/transactions",
        "get",
        call("GET", format!("/admin/tenants/{t}/transactions"), &admin, String::new()).await,
    );
    let key_id = key["id"].as_str().unwrap();
    check_call(
        "/admin/keys/{key_id}/revoke",
        "post",
        call("POST", format!("/admin/keys/{key_id}/revoke"), &admin, String::new()).await,
    );
    check_call("/internal/plugins", "get", call("GET", "/internal/plugins".into(), &admin, String::new()).await);

    let page = check_call(
        "/internal/billing/transactions",
        "get",
        call("GET", format!("/internal/billing/transactions?tenant_id={t}"), &admin, String::new()).await,
    );
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    check_call(
        "/internal/billing/transactions",
        "get",
        call("GET", "/internal/billing/transactions?limit=0".into(), &admin, String::new()).await,
    );
    check_call(
        "/internal/billing/summary",
        "get",
        call("GET", format!("/internal/billing/summary?tenant_id={t}"), &admin, String::new()).await,
    );
    check_call(
        "/internal/billing/summary",
        "get",
        call("GET", "/internal/billing/summary".into(), &admin, String::new()).await,
    );
    check_call(
        "/internal/billing/summary",
        "get",
        call("GET", format!("/internal/billing/summary?tenant_id={}", uuid::Uuid::now_v7()), &admin, String::new())
            .await,
    );
    check_call(
        "/internal/billing/reconciliation",
        "get",
        call("GET", "/internal/billing/reconciliation".into(), &admin, String::new()).await,
    );
    let raw = std::fs::read_to_string(fixture("openrouter/chat_basic.json")).unwrap();
    check_call(
        "/internal/billing/quote",
        "post",
        call(
            "POST",
            "/internal/billing/quote".into(),
            &admin,
            json!({ "model": "or-haiku", "response": raw }).to_string(),
        )
        .await,
    );
    check_call(
        "/internal/billing/quote",
        "post",
        call("POST", "/internal/billing/quote".into(), &admin, r#"{"model":"nope","usage":{}}"#.into()).await,
    );

    check_call("/v1/billing/balance", "get", call("GET", "/v1/billing/balance".into(), &user, String::new()).await);
    check_call("/v1/billing/usage", "get", call("GET", "/v1/billing/usage".into(), &user, String::new()).await);
    check_call(
        "/v1/billing/transactions",
        "get",
        call("GET", "/v1/billing/transactions".into(), &user, String::new()).await,
    );

    // Refusals: no or a wrong credential, an id that is not a UUID, an unknown key.
    let refused = call("GET", "/v1/billing/balance".into(), "Bearer nope", String::new()).await;
    assert_eq!(refused.0, 401);
    check_call("/v1/billing/balance", "get", refused);
    let refused = call("GET", "/internal/billing/transactions".into(), &user, String::new()).await;
    assert_eq!(refused.0, 403);
    check_call("/internal/billing/transactions", "get", refused);
    let refused = call("GET", format!("/admin/tenants/{t}/balance"), &user, String::new()).await;
    assert_eq!(refused.0, 403);
    check_call("/admin/tenants/{tenant_id}/balance", "get", refused);
    let refused = call("GET", "/admin/tenants/not-a-uuid/keys".into(), &admin, String::new()).await;
    assert_eq!(refused.0, 400);
    check_call("/admin/tenants/{tenant_id}/keys", "get", refused);
    let refused = call("POST", format!("/admin/keys/{}/revoke", uuid::Uuid::now_v7()), &admin, String::new()).await;
    assert_eq!(refused.0, 404);
    check_call("/admin/keys/{key_id}/revoke", "post", refused);
    let refused = call("GET", "/v1/billing/transactions?cursor=bogus".into(), &user, String::new()).await;
    assert_eq!(refused.0, 400);
    check_call("/v1/billing/transactions", "get", refused);

    // Ops: no credential needed.
    check_call("/healthz", "get", call("GET", "/healthz".into(), "", String::new()).await);
    let ready = call("GET", "/readyz".into(), "", String::new()).await;
    assert_eq!(ready.0, 200, "{}", ready.1);
    check_call("/readyz", "get", ready);

    for status in [400, 401, 403, 404, 409] {
        assert!(error_statuses.contains(&status), "no live {status} was checked against `Error`: {error_statuses:?}");
    }
}

async fn post_chat(gw: &TestGateway) -> u16 {
    common::http::post(&format!("{}/v1/chat/completions", gw.url), &gw.key, &CHAT).await.status
}
