//! Tenant slugs and the PostgreSQL schema names derived from them.

use std::fmt;

/// Names a slug may never take: they collide with hosts, routes or PostgreSQL's own schemas.
pub const RESERVED_SLUGS: &[&str] = &[
    "www",
    "api",
    "admin",
    "app",
    "docs",
    "static",
    "public",
    "platform",
    "information_schema",
];

/// A validated tenant slug: `^[a-z][a-z0-9-]{2,39}$`, not reserved, not starting `pg_`.
///
/// Used as the subdomain (`acme.<base domain>`) and in the `X-Tenant-ID` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Parses and validates a slug.
    ///
    /// # Errors
    /// A precise message when the slug is too short or long, has a character outside
    /// `a-z 0-9 -`, does not start with a letter, or is reserved.
    pub fn parse(s: &str) -> Result<Self, String> {
        let len = s.chars().count();
        if !(3..=40).contains(&len) {
            return Err(format!("slug must be 3 to 40 characters long, got {len}"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err("slug must start with a lower-case letter a-z".into());
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "slug may contain only lower-case letters, digits and '-', found {bad:?}"
            ));
        }
        if RESERVED_SLUGS.contains(&s) || s.starts_with("pg_") || s.starts_with("pg-") {
            return Err(format!("slug {s:?} is reserved"));
        }
        Ok(Self(s.to_string()))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant's schema name: `t_` + the slug with `-` replaced by `_` (injective, because
    /// slugs never contain `_`).
    pub fn schema_name(&self) -> SchemaName {
        SchemaName::parse(&format!("t_{}", self.0.replace('-', "_")))
            .expect("a valid slug always maps to a valid schema name")
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant schema name, validated again (`^t_[a-z][a-z0-9_]{2,39}$`) and only ever put into
/// SQL quoted, via [`SchemaName::quoted`] or as a bind parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// Validates a schema name read from the platform table or derived from a slug.
    ///
    /// # Errors
    /// When the name does not match `^t_[a-z][a-z0-9_]{2,39}$`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let body = s
            .strip_prefix("t_")
            .ok_or_else(|| format!("schema name {s:?} must start with t_"))?;
        let ok = (3..=40).contains(&body.len())
            && body.starts_with(|c: char| c.is_ascii_lowercase())
            && body
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!("invalid tenant schema name {s:?}"))
        }
    }

    /// The raw name (for bind parameters and logs).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted as a PostgreSQL identifier (`"t_acme"`), doubling any `"`.
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }

    /// The transaction-local search_path value: this schema only. `platform` is not on it:
    /// every platform table is named schema-qualified, so an unqualified name can only ever
    /// resolve inside the tenant's own schema.
    pub fn search_path(&self) -> String {
        self.quoted()
    }
}

/// Quotes an identifier for PostgreSQL: wraps in `"` and doubles embedded quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_slugs() {
        for s in ["acme", "acme-corp", "a12", "abc-123-def"] {
            assert!(TenantSlug::parse(s).is_ok(), "{s}");
        }
        let max = format!("a{}", "b".repeat(39));
        assert!(TenantSlug::parse(&max).is_ok());
    }

    #[test]
    fn refuses_injection_case_and_reserved() {
        let hostile = [
            "ac",
            "Acme",
            "acme\"; DROP SCHEMA platform; --",
            "acme;",
            "a'b",
            "1acme",
            "-acme",
            "acme_corp",
            "pg_catalog",
            "pg_x",
            "ac me",
            "acmé",
            "",
        ];
        for s in hostile.iter().chain(RESERVED_SLUGS) {
            assert!(TenantSlug::parse(s).is_err(), "{s:?} should be refused");
        }
        assert!(TenantSlug::parse(&format!("a{}", "b".repeat(40))).is_err());
    }

    #[test]
    fn schema_names_are_derived_and_quoted() {
        let slug = TenantSlug::parse("acme-corp").unwrap();
        let schema = slug.schema_name();
        assert_eq!(schema.as_str(), "t_acme_corp");
        assert_eq!(schema.quoted(), "\"t_acme_corp\"");
        assert_eq!(schema.search_path(), "\"t_acme_corp\"");
        assert!(SchemaName::parse("public").is_err());
        assert!(SchemaName::parse("t_a\"b").is_err());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
