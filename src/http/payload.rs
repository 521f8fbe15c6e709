//! JSON payloads with the plain `application/json` media type (RFC 8259 defines no `charset`).
//!
//! [`ApiJson<T>`] is the request body. Its work is bounded before anything is allocated for the
//! body: it is read up to the operation's own limit ([`BodyLimit`], 413 beyond), scanned once
//! against the schema's declared `maxItems`/`maxLength` ([`super::prescan`]), then parsed once
//! (no clone). A body that does not fit the schema is answered with a 422 naming the offending
//! field (`assets[1].weight: expected a number, found "heavy"`), found by walking the
//! registered OpenAPI schema; `null` is refused wherever it appears (the schema never allows it:
//! omit the field instead); malformed JSON is a 400.
//!
//! [`Json<T>`] is the response body.

use super::prescan::{Shape, Violation, prescan};
use super::types::check_format;
use crate::error::AppError;
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiResponse, impl_apirequest_for_payload};
use serde_json::Value;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The media type of every JSON body, request and response.
pub const JSON: &str = "application/json";

/// The largest body an operation accepts, chosen per request type.
pub trait BodyLimit {
    /// Bytes; a larger body answers 413 before it is read in full.
    const MAX_BODY_BYTES: usize;
}

/// Accepts `application/json` and `application/*+json`, with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(JSON)
        || essence.split_once('/').is_some_and(|(ty, sub)| {
            ty.eq_ignore_ascii_case("application") && sub.to_ascii_lowercase().ends_with("+json")
        })
}

/// A JSON request body, bounded and parsed once; schema errors name the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: Type> Payload for ApiJson<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The compiled shape of `T`'s schema (compiled once per type).
fn shape_of<T: Type + 'static>() -> Arc<Shape> {
    static SHAPES: OnceLock<RwLock<HashMap<TypeId, Arc<Shape>>>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Default::default);
    if let Some(s) = shapes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&TypeId::of::<T>())
    {
        return s.clone();
    }
    let mut registry = Registry::new();
    T::register(&mut registry);
    let shape = Arc::new(Shape::compile(&registry, &T::schema_ref()));
    shapes
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(TypeId::of::<T>(), shape.clone());
    shape
}

/// Human units for a byte limit.
pub fn bytes_text(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// The 413 problem of an operation whose limit is `max` bytes.
pub fn too_large(max: usize) -> AppError {
    AppError::client_status(
        413,
        "payload-too-large",
        format!(
            "the request body is larger than this operation's limit of {}",
            bytes_text(max)
        ),
    )
}

impl<T: ParseFromJSON + BodyLimit + 'static> ParsePayload for ApiJson<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = body
            .take()?
            .into_bytes_limit(T::MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => too_large(T::MAX_BODY_BYTES),
                other => {
                    AppError::bad_request(format!("the request body could not be read: {other}"))
                }
            })?;
        Ok(Self(parse_body::<T>(&data)?))
    }
}

impl_apirequest_for_payload!(ApiJson<T>, T: ParseFromJSON + BodyLimit + 'static);

/// Bounds, parses and converts a body (see the module documentation).
///
/// # Errors
/// 400 for an empty or malformed body; 422 naming the field for anything over a declared
/// maximum, a `null`, or a value that does not fit the schema.
pub fn parse_body<T: ParseFromJSON + 'static>(data: &[u8]) -> Result<T, AppError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    match prescan(data, &shape_of::<T>()) {
        // Broken structure: serde's parse below says precisely where (line and column).
        Ok(()) | Err(Violation::Malformed { .. }) => {}
        Err(v) => return Err(AppError::validation(v.field(), v.to_string())),
    }
    let value: Value = serde_json::from_slice(data)
        .map_err(|e| AppError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if let Some(path) = find_null(&value, "") {
        return Err(AppError::validation(
            path.clone(),
            format!("{path}: null is not allowed; omit the field to use its default"),
        ));
    }
    T::parse_from_json(Some(value)).map_err(|err| {
        let message = err.into_message();
        // Only on failure: parse again to find the field (the first value was consumed).
        let located = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|value| {
                let mut registry = Registry::new();
                T::register(&mut registry);
                locate(&registry, &T::schema_ref(), &value, "")
            });
        match located {
            Some((field, why)) => AppError::validation(field, why),
            None => AppError::validation("body", message),
        }
    })
}

fn find_null(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Null => Some(at(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_null(x, &format!("{}[{i}]", at(path)))),
        Value::Object(map) => map.iter().find_map(|(k, x)| find_null(x, &join(path, k))),
        _ => None,
    }
}

/// A JSON response body with the plain `application/json` media type.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Type> Payload for Json<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ToJSON> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let body = self.0.to_json().map(|v| v.to_string()).unwrap_or_default();
        Response::builder().content_type(JSON).body(body)
    }
}

impl<T: ToJSON> ApiResponse for Json<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Success",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: JSON,
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

fn resolve<'a>(registry: &'a Registry, schema: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry
            .schemas
            .get(name.trim_start_matches("#/components/schemas/")),
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 40 => "a long string".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    }
}

/// The `type` tag a `oneOf` variant accepts, if it has one (a single-value enum).
fn variant_tag<'a>(registry: &'a Registry, variant: &'a MetaSchemaRef) -> Option<&'a str> {
    let s = resolve(registry, variant)?;
    let (_, tag) = s.properties.iter().find(|(n, _)| *n == "type")?;
    let tag = resolve(registry, tag)?;
    let tag = if tag.enum_items.is_empty() {
        tag.all_of.iter().find_map(|t| resolve(registry, t))?
    } else {
        tag
    };
    match tag.enum_items.as_slice() {
        [Value::String(t)] => Some(t.as_str()),
        _ => None,
    }
}

/// Locates the error in a `oneOf`: picks the variants by their `type` tag.
fn locate_one_of(
    registry: &Registry,
    variants: &[MetaSchemaRef],
    value: &Value,
    path: &str,
) -> Option<(String, String)> {
    let tags: Vec<&str> = variants
        .iter()
        .filter_map(|v| variant_tag(registry, v))
        .collect();
    let given = value.get("type").and_then(Value::as_str);
    let candidates: Vec<&MetaSchemaRef> = match given {
        Some(t) if !tags.is_empty() => variants
            .iter()
            .filter(|v| variant_tag(registry, v) == Some(t))
            .collect(),
        _ => variants.iter().collect(),
    };
    if candidates.is_empty() || (given.is_none() && !tags.is_empty()) {
        let mut names = tags.clone();
        names.dedup();
        let field = join(path, "type");
        return Some((
            field.clone(),
            format!(
                "{field}: expected one of {}, found {}",
                names.join(", "),
                value.get("type").map_or("nothing".into(), kind)
            ),
        ));
    }
    let errors: Vec<(String, String)> = candidates
        .iter()
        .map(|v| locate(registry, v, value, path))
        .collect::<Option<Vec<_>>>()?;
    let required: Vec<&str> = errors
        .iter()
        .filter_map(|(f, why)| {
            why.ends_with("is required")
                .then_some(f.rsplit('.').next().unwrap_or(f))
        })
        .collect();
    if errors.len() > 1 && required.len() == errors.len() {
        return Some((
            at(path),
            format!("{}: give exactly one of {}", at(path), required.join(", ")),
        ));
    }
    errors.into_iter().next()
}

fn number_bounds(schema: &MetaSchema, value: &Value, path: &str) -> Option<(String, String)> {
    let x = value.as_f64()?;
    if let Some(min) = schema.minimum {
        let exclusive = schema.exclusive_minimum == Some(true);
        if x < min || (exclusive && x == min) {
            let op = if exclusive { ">" } else { "≥" };
            return Some((
                at(path),
                format!("{}: must be {op} {min}, got {x}", at(path)),
            ));
        }
    }
    if let Some(max) = schema.maximum {
        let exclusive = schema.exclusive_maximum == Some(true);
        if x > max || (exclusive && x == max) {
            let op = if exclusive { "<" } else { "≤" };
            return Some((
                at(path),
                format!("{}: must be {op} {max}, got {x}", at(path)),
            ));
        }
    }
    None
}

/// Finds the first place where `value` does not fit `schema`: `(field path, explanation)`.
fn locate(
    registry: &Registry,
    schema: &MetaSchemaRef,
    value: &Value,
    path: &str,
) -> Option<(String, String)> {
    let schema = resolve(registry, schema)?;
    if !schema.one_of.is_empty() {
        return locate_one_of(registry, &schema.one_of, value, path);
    }
    if !schema.all_of.is_empty() {
        // A reference with a default or description is wrapped as `allOf: [$ref]`.
        return schema
            .all_of
            .iter()
            .find_map(|s| locate(registry, s, value, path));
    }
    let mismatch = |expected: &str| {
        Some((
            at(path),
            format!("{}: expected {expected}, found {}", at(path), kind(value)),
        ))
    };
    match schema.ty {
        "object" if !schema.properties.is_empty() => {
            let Value::Object(map) = value else {
                return mismatch("an object");
            };
            for name in &schema.required {
                if map.get(*name).is_none_or(Value::is_null) {
                    let field = join(path, name);
                    return Some((field.clone(), format!("{field} is required")));
                }
            }
            for key in map.keys() {
                if !schema.properties.iter().any(|(n, _)| n == key) {
                    let names: Vec<&str> = schema.properties.iter().map(|(n, _)| *n).collect();
                    let field = join(path, key);
                    return Some((
                        field.clone(),
                        format!(
                            "unknown field {field}; expected one of {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            for (name, sub) in &schema.properties {
                match map.get(*name) {
                    None | Some(Value::Null) => continue,
                    Some(v) => {
                        if let Some(hit) = locate(registry, sub, v, &join(path, name)) {
                            return Some(hit);
                        }
                    }
                }
            }
            None
        }
        "array" => {
            let Value::Array(items) = value else {
                return mismatch("an array");
            };
            if let Some(max) = schema.max_items
                && items.len() > max
            {
                return Some((
                    at(path),
                    format!("{}: at most {max} elements, got {}", at(path), items.len()),
                ));
            }
            if let Some(min) = schema.min_items
                && items.len() < min
            {
                return Some((
                    at(path),
                    format!("{}: at least {min} elements, got {}", at(path), items.len()),
                ));
            }
            let item_schema = schema.items.as_deref()?;
            items.iter().enumerate().find_map(|(i, item)| {
                locate(registry, item_schema, item, &format!("{}[{i}]", at(path)))
            })
        }
        "integer" => {
            let fits = match schema.format {
                Some("uint64") => value.is_u64(),
                Some("uint32") => value.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)),
                Some("int32") => value.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
                _ => value.is_i64() || value.is_u64(),
            };
            if fits {
                number_bounds(schema, value, path)
            } else {
                let f = schema.format.unwrap_or("integer");
                mismatch(&format!("a whole number ({f})"))
            }
        }
        "number" => {
            if value.is_number() {
                number_bounds(schema, value, path)
            } else {
                mismatch("a number")
            }
        }
        "boolean" => {
            if value.is_boolean() {
                None
            } else {
                mismatch("true or false")
            }
        }
        "string" => {
            let Value::String(s) = value else {
                return mismatch("a string");
            };
            if !schema.enum_items.is_empty()
                && !schema.enum_items.iter().any(|e| e.as_str() == Some(s))
            {
                let options: Vec<String> = schema
                    .enum_items
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect();
                return Some((
                    at(path),
                    format!("{}: {s:?} is not one of {}", at(path), options.join(", ")),
                ));
            }
            let chars = s.chars().count();
            if let Some(max) = schema.max_length
                && chars > max
            {
                return Some((
                    at(path),
                    format!("{}: at most {max} characters, got {chars}", at(path)),
                ));
            }
            if let Some(min) = schema.min_length
                && chars < min
            {
                return Some((
                    at(path),
                    format!("{}: at least {min} characters, got {chars}", at(path)),
                ));
            }
            if let Some(why) = schema.format.and_then(|f| check_format(f, s)) {
                // Constructors say "slug must …" or just "must …": name the field once.
                let name = path.rsplit(['.', '[']).next().unwrap_or(path);
                let detail = if !name.is_empty() && why.starts_with(name) {
                    why
                } else {
                    format!("{}: {why}", at(path))
                };
                return Some((at(path), detail));
            }
            None
        }
        _ => None,
    }
}

/// Declares an operation's success response: `200` with a JSON body of `$ty`, described by
/// `$doc` in the spec.
#[macro_export]
macro_rules! ok_response {
    ($name:ident, $ty:ty, $doc:literal) => {
        /// Success response of an operation.
        #[derive(poem_openapi::ApiResponse)]
        pub enum $name {
            #[doc = $doc]
            #[oai(status = 200)]
            Ok($crate::http::payload::Json<$ty>),
        }
    };
}
