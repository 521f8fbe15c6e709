//! Making the generated OpenAPI document a contract that generated clients can use unmodified.
//!
//! Two layers, applied to the ONE document that is committed (`openapi/openapi.json`), served
//! at `/openapi.json` and embedded in `/docs`:
//!
//! 1. [`Contract<T>`], an `OpenApi` wrapper that edits poem-openapi's operation metadata with
//!    the facts that the middleware and extractors (not the handlers) make true: the optional
//!    `X-Tenant-ID` header on tenant-scoped operations, rate-limit headers on their responses,
//!    `Retry-After` on 429 and 503, and the 400/413/415/503 problems any operation can answer.
//! 2. [`finalize_spec`], a JSON pass for what poem-openapi's schema model cannot express:
//!    a `$ref` with a description instead of an `allOf` wrapper, OpenAPI's registered formats
//!    (`int64`, `int32`, `date`) instead of Rust's (`uint64`, `naive-date`) with the bounds that
//!    made them differ, and `additionalProperties: false` on every request schema (they all
//!    refuse unknown fields).
//!
//! [`AllowTable`] answers 405 with `Allow`, from the same operation metadata.

use super::problem::{PROBLEM_CONTENT_TYPE, Problem};
use poem_openapi::OpenApi;
use poem_openapi::registry::{
    MetaApi, MetaHeader, MetaMediaType, MetaOperation, MetaOperationParam, MetaParamIn,
    MetaResponse, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

/// Security schemes whose operations are tenant-scoped: they accept `X-Tenant-ID`, are
/// metered (rate-limit headers) and can be refused by the tenant's limits.
pub const TENANT_SCHEMES: &[&str] = &["ApiKey", "BearerJwt"];

/// Operations (by id) that name a tenant without a tenant security scheme.
pub const TENANT_NAMING_OPS: &[&str] = &["login", "refresh"];

/// The tag of operations that must answer even under load (no shedding, no timeout).
pub const UNSHED_TAG: &str = "Health";

/// poem-openapi's typed operations with the cross-cutting facts added (see the module docs).
pub struct Contract<T>(pub T);

fn header(name: &str, schema: MetaSchemaRef, description: &str, required: bool) -> MetaHeader {
    MetaHeader {
        name: name.to_string(),
        description: Some(description.to_string()),
        required,
        deprecated: false,
        schema,
    }
}

fn rate_limit_headers() -> Vec<MetaHeader> {
    vec![
        header(
            "RateLimit-Policy",
            String::schema_ref(),
            "IETF draft-ietf-httpapi-ratelimit-headers: the burst and monthly policies, e.g. `\"burst\";q=10;w=2, \"monthly\";q=1000;w=2592000`",
            false,
        ),
        header(
            "RateLimit",
            String::schema_ref(),
            "Remaining requests `r` and seconds to reset `t` per policy, e.g. `\"burst\";r=9;t=1`",
            false,
        ),
        header(
            "X-RateLimit-Limit",
            i64::schema_ref(),
            "Legacy: limit of the most constrained policy",
            false,
        ),
        header(
            "X-RateLimit-Remaining",
            i64::schema_ref(),
            "Legacy: requests left under that policy",
            false,
        ),
        header(
            "X-RateLimit-Reset",
            i64::schema_ref(),
            "Legacy: seconds until that policy resets",
            false,
        ),
    ]
}

fn problem_response(status: u16, description: &'static str) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: PROBLEM_CONTENT_TYPE,
            schema: Problem::schema_ref(),
        }],
        headers: vec![],
    }
}

/// Does `op` run under a tenant (named by `X-Tenant-ID`, metered)?
pub fn is_tenant_scoped(op: &MetaOperation) -> bool {
    op.security
        .iter()
        .any(|req| req.keys().any(|k| TENANT_SCHEMES.contains(k)))
        || op
            .operation_id
            .is_some_and(|id| TENANT_NAMING_OPS.contains(&id))
}

fn edit_operation(op: &mut MetaOperation) {
    let tenant_scoped = is_tenant_scoped(op);
    let metered = op
        .security
        .iter()
        .any(|req| req.keys().any(|k| TENANT_SCHEMES.contains(k)));
    let shed = !op.tags.contains(&UNSHED_TAG);
    if tenant_scoped
        && !op
            .params
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case("x-tenant-id"))
    {
        op.params.push(MetaOperationParam {
            name: "X-Tenant-ID".into(),
            schema: MetaSchemaRef::Inline(Box::new(MetaSchema {
                pattern: Some("^[a-z][a-z0-9-]{2,39}$".into()),
                min_length: Some(3),
                max_length: Some(40),
                ..MetaSchema::new("string")
            })),
            in_type: MetaParamIn::Header,
            description: Some(
                "The tenant's slug. Optional: the subdomain (`<slug>.<base domain>`), the API key \
                 or the access token also name the tenant; when several do, they must agree."
                    .into(),
            ),
            required: false,
            deprecated: false,
            explode: true,
            style: None,
        });
    }
    let mut add = |status: u16, description: &'static str| {
        if !op
            .responses
            .responses
            .iter()
            .any(|r| r.status == Some(status))
        {
            op.responses
                .responses
                .push(problem_response(status, description));
        }
    };
    if op.request.is_some() || tenant_scoped {
        add(
            400,
            "Malformed request: invalid or empty JSON, conflicting tenant sources, bad header.",
        );
    }
    if op.request.is_some() {
        add(
            413,
            "The request body is larger than this operation's limit.",
        );
        add(415, "The request body is not `application/json`.");
    }
    if shed {
        add(
            503,
            "The service is overloaded or a dependency is unavailable; retry after `Retry-After`.",
        );
    }
    op.responses.responses.sort_by_key(|r| r.status);
    for resp in &mut op.responses.responses {
        if metered {
            for h in rate_limit_headers() {
                if !resp
                    .headers
                    .iter()
                    .any(|x| x.name.eq_ignore_ascii_case(&h.name))
                {
                    resp.headers.push(h);
                }
            }
        }
        if matches!(resp.status, Some(429) | Some(503))
            && !resp
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("retry-after"))
        {
            resp.headers.push(header(
                "Retry-After",
                i64::schema_ref(),
                "Seconds to wait before a retry can succeed",
                resp.status == Some(429),
            ));
        }
    }
}

impl<T: OpenApi> OpenApi for Contract<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for op in apis
            .iter_mut()
            .flat_map(|a| a.paths.iter_mut())
            .flat_map(|p| p.operations.iter_mut())
        {
            edit_operation(op);
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        Problem::register(registry);
    }

    fn add_routes(
        self,
        route_table: &mut HashMap<
            String,
            HashMap<poem::http::Method, poem::endpoint::BoxEndpoint<'static>>,
        >,
    ) {
        self.0.add_routes(route_table);
    }
}

/// The methods each documented path accepts, for `Allow` on 405 and for the operations that
/// must never be shed.
pub struct AllowTable {
    paths: Vec<(Vec<String>, String, bool)>,
}

impl AllowTable {
    /// From `T`'s operation metadata.
    pub fn of<T: OpenApi>() -> Self {
        let mut paths: Vec<(Vec<String>, String, bool)> = T::meta()
            .into_iter()
            .flat_map(|api| api.paths)
            .map(|p| {
                let segments = p
                    .path
                    .trim_start_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect();
                let mut methods: Vec<String> =
                    p.operations.iter().map(|o| o.method.to_string()).collect();
                methods.sort();
                methods.dedup();
                let unshed = p.operations.iter().all(|o| o.tags.contains(&UNSHED_TAG));
                (segments, methods.join(", "), unshed)
            })
            .collect();
        // Literal segments before `{param}` ones, so `/a/b` wins over `/a/{id}`.
        paths
            .sort_by_key(|(segments, _, _)| segments.iter().filter(|s| s.starts_with('{')).count());
        Self { paths }
    }

    fn find(&self, path: &str) -> Option<&(Vec<String>, String, bool)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.paths.iter().find(|(tpl, _, _)| {
            tpl.len() == segments.len()
                && tpl
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s)
        })
    }

    /// The `Allow` value for a concrete request path, if the path is documented.
    pub fn allow(&self, path: &str) -> Option<&str> {
        self.find(path).map(|(_, m, _)| m.as_str())
    }

    /// Must requests to `path` be served even under load (health checks)?
    pub fn unshed(&self, path: &str) -> bool {
        self.find(path).is_some_and(|(_, _, u)| *u)
    }
}

/// What [`finalize_spec`] changed, for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// `allOf` wrappers around one `$ref` collapsed.
    pub collapsed_all_of: usize,
    /// Formats rewritten to registered ones.
    pub formats_rewritten: usize,
    /// Request schemas closed with `additionalProperties: false`.
    pub closed_schemas: Vec<String>,
    /// Schemas reachable from both a request body and a response (should be none).
    pub shared_request_response: Vec<String>,
}

/// Finalizes poem-openapi's document (see the module docs).
///
/// # Panics
/// When the input is not JSON (poem-openapi always emits JSON).
pub fn finalize_spec(raw: &str) -> (String, Report) {
    let mut doc: Value = serde_json::from_str(raw).expect("poem-openapi emits valid JSON");
    let mut report = Report::default();
    collapse_all_of(&mut doc, &mut report);
    standard_formats(&mut doc, &mut report);
    close_request_schemas(&mut doc, &mut report);
    let mut out = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
    out.push('\n');
    (out, report)
}

/// `{"allOf":[{"$ref":X},{patch}], ...patch}` (poem-openapi's `MetaSchemaRef::merge` for a
/// documented field) → `{"$ref":X, "description":…}`.
fn collapse_all_of(v: &mut Value, report: &mut Report) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("allOf") {
                let refs: Vec<&Value> = parts.iter().filter(|p| p.get("$ref").is_some()).collect();
                let patches_only = parts.iter().all(|p| {
                    p.get("$ref").is_some()
                        || p.as_object().is_some_and(|o| {
                            !o.contains_key("type") && !o.contains_key("properties")
                        })
                });
                if refs.len() == 1 && patches_only {
                    let mut out = Map::new();
                    out.insert("$ref".into(), refs[0]["$ref"].clone());
                    for k in ["description", "default", "deprecated"] {
                        if let Some(x) = map.get(k) {
                            out.insert(k.into(), x.clone());
                        }
                    }
                    *map = out;
                    report.collapsed_all_of += 1;
                    return;
                }
            }
            for x in map.values_mut() {
                collapse_all_of(x, report);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| collapse_all_of(x, report)),
        _ => {}
    }
}

/// Rust's formats → OpenAPI's registered ones, with the bounds that made them differ (a tighter
/// validator bound already present is kept).
fn standard_formats(v: &mut Value, report: &mut Report) {
    match v {
        Value::Object(map) => {
            let ty = map.get("type").and_then(Value::as_str).map(str::to_owned);
            let fmt = map.get("format").and_then(Value::as_str).map(str::to_owned);
            if let (Some(ty), Some(fmt)) = (ty, fmt) {
                let rewrite: Option<(&str, Option<i64>, Option<i64>)> =
                    match (ty.as_str(), fmt.as_str()) {
                        ("integer", "uint64") => Some(("int64", Some(0), None)),
                        ("integer", "uint32") => {
                            Some(("int64", Some(0), Some(i64::from(u32::MAX))))
                        }
                        ("integer", "uint16") => {
                            Some(("int32", Some(0), Some(i64::from(u16::MAX))))
                        }
                        ("integer", "uint8") => Some(("int32", Some(0), Some(i64::from(u8::MAX)))),
                        ("integer", "int16") => Some((
                            "int32",
                            Some(i64::from(i16::MIN)),
                            Some(i64::from(i16::MAX)),
                        )),
                        ("integer", "int8") => {
                            Some(("int32", Some(i64::from(i8::MIN)), Some(i64::from(i8::MAX))))
                        }
                        ("string", "naive-date") => Some(("date", None, None)),
                        _ => None,
                    };
                if let Some((new, min, max)) = rewrite {
                    map.insert("format".into(), json!(new));
                    if let Some(min) = min {
                        let tighter = map
                            .get("minimum")
                            .and_then(Value::as_f64)
                            .is_some_and(|m| m >= min as f64);
                        if !tighter {
                            map.insert("minimum".into(), json!(min));
                        }
                    }
                    if let Some(max) = max {
                        let tighter = map
                            .get("maximum")
                            .and_then(Value::as_f64)
                            .is_some_and(|m| m <= max as f64);
                        if !tighter {
                            map.insert("maximum".into(), json!(max));
                        }
                    }
                    report.formats_rewritten += 1;
                }
            }
            for x in map.values_mut() {
                standard_formats(x, report);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| standard_formats(x, report)),
        _ => {}
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.insert(name.to_string());
            }
            map.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn closure(doc: &Value, roots: BTreeSet<String>) -> BTreeSet<String> {
    let schemas = &doc["components"]["schemas"];
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        let mut next = BTreeSet::new();
        collect_refs(&schemas[&n], &mut next);
        todo.extend(next);
    }
    seen
}

/// Every object schema reachable from a request body gets `additionalProperties: false` (the
/// request types all refuse unknown fields).
fn close_request_schemas(doc: &mut Value, report: &mut Report) {
    let mut request_roots = BTreeSet::new();
    let mut response_roots = BTreeSet::new();
    if let Some(paths) = doc["paths"].as_object() {
        for item in paths.values() {
            for op in item.as_object().into_iter().flat_map(|o| o.values()) {
                collect_refs(&op["requestBody"], &mut request_roots);
                collect_refs(&op["responses"], &mut response_roots);
            }
        }
    }
    let request = closure(doc, request_roots);
    let response = closure(doc, response_roots);
    report.shared_request_response = request
        .intersection(&response)
        .filter(|n| schema_is_object(doc, n))
        .cloned()
        .collect();
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for name in &request {
        if let Some(Value::Object(s)) = schemas.get_mut(name)
            && s.get("type").and_then(Value::as_str) == Some("object")
            && s.contains_key("properties")
        {
            s.insert("additionalProperties".into(), Value::Bool(false));
            report.closed_schemas.push(name.clone());
        }
    }
}

fn schema_is_object(doc: &Value, name: &str) -> bool {
    doc["components"]["schemas"][name]
        .get("properties")
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_wrappers_rewrites_formats_and_closes_requests() {
        let raw = json!({
            "openapi": "3.0.0",
            "paths": {"/x": {"post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}},
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Out"}}}}}
            }}},
            "components": {"schemas": {
                "In": {"type": "object", "properties": {
                    "n": {"type": "integer", "format": "uint32", "maximum": 10.0},
                    "d": {"type": "string", "format": "naive-date"},
                    "inner": {"description": "Inner.", "allOf": [{"$ref": "#/components/schemas/Inner"}, {"description": "Inner."}]}
                }},
                "Inner": {"type": "object", "properties": {"k": {"type": "integer", "format": "uint64"}}},
                "Out": {"type": "object", "properties": {"v": {"type": "string"}}}
            }}
        })
        .to_string();
        let (out, report) = finalize_spec(&raw);
        let doc: Value = serde_json::from_str(&out).unwrap();
        let s = &doc["components"]["schemas"];
        assert_eq!(
            s["In"]["properties"]["inner"],
            json!({"$ref": "#/components/schemas/Inner", "description": "Inner."})
        );
        assert_eq!(
            s["In"]["properties"]["n"],
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 10.0})
        );
        assert_eq!(s["In"]["properties"]["d"]["format"], "date");
        assert_eq!(s["Inner"]["properties"]["k"]["minimum"], 0);
        assert_eq!(s["In"]["additionalProperties"], false);
        assert_eq!(s["Inner"]["additionalProperties"], false);
        assert!(s["Out"].get("additionalProperties").is_none());
        assert_eq!(report.collapsed_all_of, 1);
        assert_eq!(report.formats_rewritten, 3);
        assert!(report.shared_request_response.is_empty());
    }

    #[test]
    fn allow_table_matches_templates_literal_first() {
        let table = AllowTable {
            paths: vec![
                (vec!["a".into(), "{id}".into()], "DELETE, GET".into(), false),
                (vec!["a".into(), "b".into()], "POST".into(), true),
            ],
        };
        let mut t = table;
        t.paths
            .sort_by_key(|(s, _, _)| s.iter().filter(|x| x.starts_with('{')).count());
        assert_eq!(t.allow("/a/b"), Some("POST"));
        assert_eq!(t.allow("/a/xyz"), Some("DELETE, GET"));
        assert_eq!(t.allow("/nope"), None);
        assert!(t.unshed("/a/b") && !t.unshed("/a/c"));
    }
}
