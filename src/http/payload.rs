//! `ApiJson<T>`: the JSON request payload. Same schema and content type as poem-openapi's
//! `Json<T>`, but a body that does not fit the schema is answered with a 422 naming the
//! offending field (`assets[1].weight: expected a number, found "heavy"`), found by walking the
//! registered OpenAPI schema; malformed JSON is a 400.

use super::types::check_format;
use crate::error::AppError;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

/// A JSON request body whose schema errors name the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: Type> Payload for ApiJson<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for ApiJson<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        if data.is_empty() {
            return Err(
                AppError::bad_request("the request body is empty; send a JSON object").into(),
            );
        }
        let value: Value = serde_json::from_slice(&data).map_err(|e| {
            AppError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        match T::parse_from_json(Some(value.clone())) {
            Ok(v) => Ok(Self(v)),
            Err(err) => {
                let message = err.into_message();
                let mut registry = Registry::new();
                T::register(&mut registry);
                let located = locate(&registry, &T::schema_ref(), &value, "");
                Err(match located {
                    Some((field, why)) => AppError::validation(field, why),
                    None => AppError::validation("body", message),
                }
                .into())
            }
        }
    }
}

impl_apirequest_for_payload!(ApiJson<T>, T: ParseFromJSON);

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

/// Finds the first place where `value` does not fit `schema`: `(field path, explanation)`.
fn locate(
    registry: &Registry,
    schema: &MetaSchemaRef,
    value: &Value,
    path: &str,
) -> Option<(String, String)> {
    let schema = resolve(registry, schema)?;
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
                None
            } else {
                let f = schema.format.unwrap_or("integer");
                mismatch(&format!("a whole number ({f})"))
            }
        }
        "number" => {
            if value.is_number() {
                None
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
            None
        }
        _ => None,
    }
}
