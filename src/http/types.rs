//! The domain's values as OpenAPI types: each newtype is parsed at the edge by its own
//! constructor ("parse, don't validate"), so a handler never receives an unchecked string. The
//! schemas carry the rules as far as JSON Schema can say them (format, pattern, length); the
//! request payload names the offending field of a value its constructor refuses
//! ([`check_format`]).

use crate::domain::{
    AdminId, ApiKeyId, BatchId, DisplayName, Email, InvitationId, JobId, KeyName, Password, Role,
    SessionId, SimulationId, TenantId, TenantSlug, TenantStatus, UserId,
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
    pattern: Option<String>,
    min_length: usize,
    max_length: usize,
) -> MetaSchema {
    MetaSchema {
        format: Some(format),
        pattern,
        min_length: Some(min_length),
        max_length: Some(max_length),
        ..MetaSchema::new("string")
    }
}

/// Characters Rust's `char::is_control` refuses (Unicode category Cc), as a regex class body.
const CONTROL: &str = "\\u0000-\\u001F\\u007F-\\u009F";

/// A text without control characters that is not blank (the domain trims it).
fn text_pattern() -> String {
    format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$")
}

/// `^[a-z][a-z0-9-]{2,39}$` without the reserved slugs and the `pg-` prefix.
fn slug_pattern() -> String {
    let reserved: Vec<&str> = crate::domain::slug::RESERVED_SLUGS
        .iter()
        .copied()
        .filter(|r| !r.contains('_'))
        .collect();
    format!(
        "^(?!({})$)(?!pg-)[a-z][a-z0-9-]{{2,39}}$",
        reserved.join("|")
    )
}

/// `local@domain.tld` as `Email::parse` accepts it: an RFC 5322 dot-atom of at most 64
/// characters, `@`, DNS labels, an alphabetic top-level label.
fn email_pattern() -> String {
    let atext = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!("^(?=[^@]{{1,64}}@){atext}+(\\.{atext}+)*@({label}\\.)+[A-Za-z]{{2,63}}$")
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
api_id!(JobId, "JobId", "job");
api_id!(BatchId, "BatchId", "bat");
api_id!(SessionId, "SessionId", "ses");
api_id!(InvitationId, "InvitationId", "inv");
api_id!(AdminId, "AdminId", "adm");

api_string!(
    TenantSlug,
    "TenantSlug",
    |s: &str| TenantSlug::parse(s.trim()),
    |v: &TenantSlug| v.to_string(),
    string_schema("tenant-slug", Some(slug_pattern()), 3, 40)
);
api_string!(
    Email,
    "Email",
    Email::parse,
    |v: &Email| v.to_string(),
    string_schema("email", Some(email_pattern()), 3, 254)
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
    string_schema(
        "display-name",
        Some(text_pattern()),
        1,
        DisplayName::MAX_CHARS
    )
);
api_string!(
    KeyName,
    "KeyName",
    KeyName::parse,
    |v: &KeyName| v.to_string(),
    string_schema("key-name", Some(text_pattern()), 1, KeyName::MAX_CHARS)
);

/// A list of at most `N` elements: `maxItems` in the schema, enforced when parsed (for the
/// inner rows of a matrix, which a field validator cannot reach).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundedVec<T, const N: usize>(pub Vec<T>);

impl<T: Type, const N: usize> Type for BoundedVec<T, N> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = T::RawValueType;

    fn name() -> Cow<'static, str> {
        format!("list_max{N}_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(T::schema_ref())),
            max_items: Some(N),
            ..MetaSchema::new("array")
        }))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.0.iter().filter_map(|x| x.as_raw_value()))
    }
}

impl<T: ParseFromJSON, const N: usize> ParseFromJSON for BoundedVec<T, N> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::Array(a) if a.len() <= N => a
                .into_iter()
                .map(|v| T::parse_from_json(Some(v)).map_err(ParseError::propagate))
                .collect::<Result<Vec<_>, _>>()
                .map(BoundedVec),
            Value::Array(a) => Err(ParseError::custom(format!(
                "{} elements, at most {N} allowed",
                a.len()
            ))),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<T: ToJSON, const N: usize> ToJSON for BoundedVec<T, N> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Array(
            self.0.iter().filter_map(ToJSON::to_json).collect(),
        ))
    }
}

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
    "A user's role inside its tenant: `owner` (created the tenant; all rights), `admin` (manages users and API keys), `member` (runs simulations and reads results), `viewer` (reads simulations, jobs and usage; runs and manages nothing)."
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
    fn patterns_agree_with_the_constructors() {
        let pattern = slug_pattern();
        let slug = regex_lite(&pattern);
        for s in ["acme", "acme-corp", "www1", "apix"] {
            assert!(slug(s) && TenantSlug::parse(s).is_ok(), "{s}");
        }
        for s in ["www", "api", "admin", "pg-x1", "Acme", "ab"] {
            assert!(!slug(s) && TenantSlug::parse(s).is_err(), "{s}");
        }
    }

    /// A tiny matcher for the anchored patterns above (lookaheads of literal alternatives,
    /// classes), so the test needs no regex crate: tries the pattern's pieces by hand.
    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool + use<> {
        let reserved: Vec<String> = pattern
            .split("(?!(")
            .nth(1)
            .and_then(|r| r.split(")$)").next())
            .map(|r| r.split('|').map(str::to_string).collect())
            .unwrap_or_default();
        move |s: &str| {
            !reserved.iter().any(|r| r == s)
                && !s.starts_with("pg-")
                && (3..=40).contains(&s.len())
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }
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
