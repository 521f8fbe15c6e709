//! The domain's values as OpenAPI types: each newtype is parsed at the edge by its own
//! constructor ("parse, don't validate"), so a handler never receives an unchecked string. The
//! schemas carry the rules as far as JSON Schema can say them (format, pattern, length); the
//! request payload names the offending field of a value its constructor refuses
//! ([`check_format`]).

use crate::domain::{
    ApiKeyId, DisplayName, Email, KeyName, Password, Role, SimulationId, TenantId, TenantSlug,
    TenantStatus, UserId,
};
use poem::http::HeaderValue;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToHeader, ToJSON, Type,
};
use serde_json::Value;
use std::borrow::Cow;

/// Implements JSON and parameter parsing (by `$parse`) and JSON output (by `$show`) of a value
/// carried as a JSON string.
macro_rules! string_codec {
    ($ty:ty, $parse:expr, $show:expr) => {
        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) => ($parse)(s.as_str()).map_err(ParseError::custom),
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }

        impl ParseFromParameter for $ty {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                ($parse)(value).map_err(ParseError::custom)
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(($show)(self)))
            }
        }
    };
}

/// Implements poem-openapi's string-type traits for a domain value parsed by `$parse` and shown
/// by `$show`, with an inline string schema.
macro_rules! api_string {
    ($ty:ty, $name:literal, $parse:expr, $show:expr, $schema:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        string_codec!($ty, $parse, $show);

        impl ToHeader for $ty {
            fn to_header(&self) -> Option<HeaderValue> {
                HeaderValue::from_str(&($show)(self)).ok()
            }
        }
    };
}

fn string_schema(
    format: &'static str,
    pattern: Option<&str>,
    min_length: usize,
    max_length: usize,
) -> MetaSchema {
    MetaSchema {
        format: Some(format),
        pattern: pattern.map(str::to_string),
        min_length: Some(min_length),
        max_length: Some(max_length),
        ..MetaSchema::new("string")
    }
}

const UUID: &str = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

macro_rules! api_id {
    ($ty:ty, $name:literal, $prefix:literal) => {
        api_string!(
            $ty,
            $name,
            |s: &str| <$ty>::parse(s),
            |v: &$ty| v.to_string(),
            MetaSchema {
                pattern: Some(format!("^{}_{UUID}$", $prefix)),
                min_length: Some($prefix.len() + 37),
                max_length: Some($prefix.len() + 37),
                ..MetaSchema::new("string")
            }
        );
    };
}

api_id!(TenantId, "TenantId", "ten");
api_id!(UserId, "UserId", "usr");
api_id!(ApiKeyId, "ApiKeyId", "key");
api_id!(SimulationId, "SimulationId", "sim");

api_string!(
    TenantSlug,
    "TenantSlug",
    |s: &str| TenantSlug::parse(s.trim()),
    |v: &TenantSlug| v.to_string(),
    string_schema("tenant-slug", Some("^[a-z][a-z0-9-]{2,39}$"), 3, 40)
);
api_string!(
    Email,
    "Email",
    Email::parse,
    |v: &Email| v.to_string(),
    string_schema("email", None, 3, 254)
);
api_string!(
    Password,
    "Password",
    Password::parse,
    |v: &Password| v.expose().to_string(),
    string_schema("password", None, Password::MIN_CHARS, Password::MAX_CHARS)
);
api_string!(
    DisplayName,
    "DisplayName",
    DisplayName::parse,
    |v: &DisplayName| v.to_string(),
    string_schema("display-name", None, 1, DisplayName::MAX_CHARS)
);
api_string!(
    KeyName,
    "KeyName",
    KeyName::parse,
    |v: &KeyName| v.to_string(),
    string_schema("key-name", None, 1, KeyName::MAX_CHARS)
);

/// Why `value` is not a valid value of the string `format`, for the formats of this module;
/// `None` when it is (or the format is not ours).
pub fn check_format(format: &str, value: &str) -> Option<String> {
    let outcome = match format {
        "tenant-slug" => TenantSlug::parse(value.trim()).map(drop),
        "email" => Email::parse(value).map(drop),
        "password" => Password::parse(value).map(drop),
        "display-name" => DisplayName::parse(value).map(drop),
        "key-name" => KeyName::parse(value).map(drop),
        _ => Ok(()),
    };
    outcome.err()
}

/// Implements poem-openapi's string-enum traits for a domain enum with `ALL`, `as_str` and
/// `parse`, registered as the named schema `$name`.
macro_rules! api_enum {
    ($ty:ty, $name:literal, $description:literal) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Reference($name.to_string())
            }

            fn register(registry: &mut Registry) {
                registry.create_schema::<Self, _>($name.to_string(), |_| MetaSchema {
                    description: Some($description),
                    enum_items: <$ty>::ALL
                        .iter()
                        .map(|v| Value::String(v.as_str().to_string()))
                        .collect(),
                    ..MetaSchema::new("string")
                });
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        string_codec!($ty, <$ty>::parse, |v: &$ty| v.as_str().to_string());
    };
}

api_enum!(
    Role,
    "Role",
    "A user's role inside its tenant: `owner` (created the tenant; all rights), `admin` (manages users and API keys), `member` (runs simulations and reads results)."
);
api_enum!(
    TenantStatus,
    "TenantStatus",
    "Tenant lifecycle status: `active` (serving requests) or `suspended` (every authenticated request answers 403)."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_at_the_edge() {
        assert!(TenantSlug::parse_from_json(Some(Value::String("acme".into()))).is_ok());
        assert!(TenantSlug::parse_from_json(Some(Value::String("Acme;".into()))).is_err());
        assert!(Email::parse_from_json(Some(Value::from(5))).is_err());
        let id = SimulationId::new();
        assert_eq!(
            SimulationId::parse_from_parameter(&id.to_string()).unwrap(),
            id
        );
        assert!(UserId::parse_from_parameter(&id.to_string()).is_err());
        assert_eq!(
            Role::parse_from_json(Some(Value::from("admin"))).unwrap(),
            Role::Admin
        );
        assert_eq!(
            check_format("password", "short").unwrap(),
            "password must be at least 8 characters long"
        );
        assert!(check_format("email", "ada@example.com").is_none());
        assert!(check_format("uuid", "anything").is_none());
    }

    #[test]
    fn id_patterns_match_generated_ids() {
        let MetaSchemaRef::Inline(schema) = ApiKeyId::schema_ref() else {
            panic!("inline schema expected")
        };
        let pattern = schema.pattern.unwrap();
        let id = ApiKeyId::new().to_string();
        assert!(pattern.starts_with("^key_"));
        assert_eq!(id.len(), schema.max_length.unwrap());
    }
}
