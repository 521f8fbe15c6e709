//! Short human-entered texts with rules: names of organisations, people and API keys.

use std::fmt;

/// Declares a trimmed, non-empty text of at most `$max` characters without control characters.
macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted text, in characters (after trimming).
            pub const MAX_CHARS: usize = $max;

            /// Trims and checks the text.
            ///
            /// # Errors
            /// When it is empty after trimming, longer than the maximum, or contains a control
            /// character.
            pub fn parse(s: &str) -> Result<Self, String> {
                let v = s.trim();
                let n = v.chars().count();
                if n == 0 || n > $max {
                    return Err(format!("must be 1 to {} characters long, got {n}", $max));
                }
                if v.chars().any(char::is_control) {
                    return Err("must not contain control characters".into());
                }
                Ok(Self(v.to_string()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A person's or an organisation's name: 1–200 characters.
    DisplayName,
    200
);
bounded_text!(
    /// An API key's name, e.g. `ci-pipeline`: 1–100 characters.
    KeyName,
    100
);
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
        assert!(KeyName::parse("a\u{0}b").is_err());
        assert!(KeyName::parse(&"k".repeat(101)).is_err());
    }
}
