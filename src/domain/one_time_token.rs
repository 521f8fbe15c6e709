//! Single-use tokens sent by email (password reset, email verification, invitations): 256
//! random bits from the thread CSPRNG, written as 43 base64url characters. Only the SHA-256 of
//! the token is stored, so a copy of the database cannot be used to take over an account.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::fmt;

/// Length of a token's text, characters (32 bytes in unpadded base64url).
pub const TOKEN_CHARS: usize = 43;

/// A single-use token as generated or presented. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeToken(String);

impl OneTimeToken {
    /// A fresh token from 256 bits of the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks the form of a presented token (43 base64url characters) before any query.
    ///
    /// # Errors
    /// A message saying the token is malformed (e.g. truncated when copied from the message).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let ok = s.len() == TOKEN_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "the token must be the {TOKEN_CHARS} characters (A–Z, a–z, 0–9, - and _) of the link in the message; check it was copied whole"
            ))
        }
    }

    /// The token text (to put in a link, once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token text: what is stored and looked up.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_refused() {
        let t = OneTimeToken::generate();
        assert_eq!(t.expose().len(), TOKEN_CHARS);
        assert_eq!(OneTimeToken::parse(t.expose()).unwrap(), t);
        assert_ne!(OneTimeToken::generate(), t);
        assert_eq!(t.hash(), OneTimeToken::parse(t.expose()).unwrap().hash());
        assert!(OneTimeToken::parse(&t.expose()[1..]).is_err());
        assert!(OneTimeToken::parse(&format!("{}=", &t.expose()[1..])).is_err());
        assert!(OneTimeToken::parse(&"!".repeat(TOKEN_CHARS)).is_err());
        assert_eq!(format!("{t:?}"), "OneTimeToken(<redacted>)");
    }
}
