//! User-facing account values: email, password, role.

use std::fmt;

/// A normalised email address: trimmed, lower case, ASCII `local@domain.tld` where `local` is
/// an RFC 5322 dot-atom of at most 64 characters and `domain` is a DNS name (labels of letters,
/// digits and inner hyphens, at most 63 each) whose last label is alphabetic; at most 254 in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// RFC 5322 `atext`: the characters of a dot-atom besides `.`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

impl Email {
    /// Parses and normalises an email address.
    ///
    /// # Errors
    /// A message saying what is wrong: length, characters, or the form `name@example.com`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let form = || format!("{s:?} is not an email address of the form name@example.com");
        if s.is_empty() || s.len() > 254 {
            return Err("email must be 1 to 254 characters long".into());
        }
        if !s.is_ascii() {
            return Err("email must be ASCII (name@example.com)".into());
        }
        let (local, domain) = s.split_once('@').ok_or_else(form)?;
        let local_ok = (1..=64).contains(&local.len())
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = domain.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if !local_ok || !domain_ok {
            return Err(form());
        }
        Ok(Self(s))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A candidate password: 8 to 128 characters (OWASP: at least 8, allow at least 64).
/// `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Minimum length in characters.
    pub const MIN_CHARS: usize = 8;
    /// Maximum length in characters.
    pub const MAX_CHARS: usize = 128;

    /// Checks the length rules.
    ///
    /// # Errors
    /// When shorter than 8 or longer than 128 characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n < Self::MIN_CHARS {
            return Err(format!(
                "password must be at least {} characters long",
                Self::MIN_CHARS
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(format!(
                "password must be at most {} characters long",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// The password text (only for hashing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A user's role inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Created the tenant; all rights.
    Owner,
    /// Manages users and API keys.
    Admin,
    /// Runs simulations and reads results.
    Member,
    /// Reads simulations and usage only.
    Viewer,
}

impl Role {
    /// Every role, most rights first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The database / token spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the database / token spelling.
    ///
    /// # Errors
    /// A message listing the roles when `s` is none of them.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role; one of owner, admin, member, viewer"))
    }

    /// Owner and admin may manage users and API keys.
    pub fn can_manage(&self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        for ok in [
            "a.b+tag@sub.example.co",
            "o'brien@example.ie",
            "x@a-b.example",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@.com",
            "a..b@example.com",
            ".ab@example.com",
            "ada@example.c0m",
            "ada@-example.com",
            "\u{119}@example.com",
            "a@b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_lengths() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-pass").unwrap()),
            "Password(<redacted>)"
        );
    }
}
