//! The committed spec is what the code generates; the docs are served.

use crate::helpers::*;

#[tokio::test]
async fn committed_spec_matches_generated() {
    let generated = montecarlo_platform::startup::openapi_json().await;
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi --write`"
    );
}

#[tokio::test]
async fn spec_and_docs_are_served_and_complete() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", &[]).await;
    let spec = spec.ok(200);
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["ApiKey"]["type"], "apiKey");
    assert_eq!(schemes["BearerJwt"]["scheme"], "bearer");
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path} has no tag"
            );
            if path.starts_with("/api/v1/") {
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('4')),
                    "{method} {path} documents no error"
                );
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            r["description"].as_str().is_some_and(|d| !d.is_empty()),
                            "{method} {path} {status} has no description"
                        );
                        assert!(
                            r["content"]["application/problem+json"].is_object(),
                            "{method} {path} {status} is not problem+json"
                        );
                    }
                }
            }
        }
    }
    // Request bodies and success bodies of the API carry examples.
    let schemas = &spec["components"]["schemas"];
    let example_of = |schema: &serde_json::Value| -> bool {
        let schema = if schema["type"] == "array" {
            &schema["items"]
        } else {
            schema
        };
        match schema["$ref"].as_str() {
            Some(r) => {
                schemas[r.trim_start_matches("#/components/schemas/")]["example"].is_object()
            }
            None => true,
        }
    };
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if let Some(body) =
                op["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]
                    .as_object()
            {
                assert!(
                    example_of(&serde_json::Value::Object(body.clone())),
                    "{method} {path}: request body has no example"
                );
            }
            for (status, r) in op["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    let schema = &r["content"]["application/json; charset=utf-8"]["schema"];
                    assert!(
                        example_of(schema),
                        "{method} {path} {status}: response has no example"
                    );
                }
            }
        }
    }
    let docs = app.get("/docs", &[]).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(
        docs.body.as_str().unwrap_or("").contains("swagger"),
        "docs UI not served"
    );
}
